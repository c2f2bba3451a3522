"""The HTTP/2 suite: clients against one cleartext HTTP/2 server (lighttpd, h2o).

``run`` is the parent (command line, interleaved rounds, tables), ``plan``
the clients, figures and durations, ``worker`` the measurements in a worker
process, ``clients`` the client adapters, ``minimal`` the reference client
written on Trio and h2, ``sansio`` h2's own cost, ``h2load`` the native
ceiling.
"""
