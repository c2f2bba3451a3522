"""The WebSocket suite: clients against one Node ``ws`` echo server.

``run`` is the parent (command line, order of the runs, tables),
``figures`` the measurements and the worker, ``base`` what a client adapter
offers them, ``trio_clients`` and ``asyncio_clients`` the adapters, and
``raw`` the framing of the floor client.
"""
