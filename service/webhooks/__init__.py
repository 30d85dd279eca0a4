"""Signed webhooks: revocation events POSTed to configured receivers, at least once.

``config`` reads the webhooks file, ``payloads`` builds and signs what is sent, ``delivery``
POSTs one message, ``worker`` follows the events stream through one consumer group per webhook
and ``dead_letters`` keeps what could not be delivered.
"""
