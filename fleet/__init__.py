"""The operator's side of a fleet of kiosks: ingest every kiosk's MQTT messages into a database
(exactly once per ``(device_id, seq)``, gaps tracked) and report on them.

``kiosk-fleet ingest`` and ``kiosk-fleet report`` (``fleet/cli.py``). Its third-party
dependencies are the ``fleet`` extra (``pip install audience-kiosk[fleet]``); a kiosk installs
none of them.
"""
