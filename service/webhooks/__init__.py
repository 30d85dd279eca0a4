"""Signed webhooks: revocation events POSTed to configured receivers, at least once.

``config`` reads the webhooks file, ``payloads`` builds and signs what is sent, ``delivery``
POSTs one message, ``lease`` elects the one process delivering a webhook, ``worker`` follows
the events stream through one consumer group per webhook (while its process holds the lease)
and ``dead_letters`` keeps what could not be delivered.
"""
