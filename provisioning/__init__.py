"""Provisioning: signed model bundles, built offline and flashed to devices over MQTT or a card.

``keys`` makes and loads Ed25519 keys, ``bundle`` packs and checks the bundle file, ``kat`` records
and re-runs the known-answer tests, ``build`` turns a models folder into a bundle, and ``cli`` is
``kiosk-provision``. The device's side is ``device/slots.py`` and ``device/provision.py``.
"""
