"""MQTT: a thin communicator in front of paho, the spool-draining publisher and the messages."""

from __future__ import annotations

from device.mqtt.base import Communicator, NullCommunicator
from device.mqtt.commands import COMMANDS, CommandError, handle_command, parse_command
from device.mqtt.discovery import discovery_messages
from device.mqtt.messages import Topics, audience_message, iso_utc
from device.mqtt.publisher import Publisher

__all__ = ["Communicator", "NullCommunicator", "Publisher", "Topics", "COMMANDS", "CommandError",
           "audience_message", "discovery_messages", "handle_command", "iso_utc", "parse_command",
           "make_communicator"]


def make_communicator(cfg) -> Communicator:
    """The communicator for an ``[mqtt]`` section: paho when a host is set, else the null one."""
    if not cfg.host:
        return NullCommunicator()
    from device.mqtt.paho_comm import PahoCommunicator

    return PahoCommunicator(cfg, will_topic=Topics(cfg.prefix).availability)
