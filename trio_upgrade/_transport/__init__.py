"""The transport layer: a connected byte stream to the server.

TCP (happy eyeballs through :func:`trio.open_tcp_stream`), TLS, HTTP CONNECT
proxies, and the buffered stream that serves the bytes read together with a
response head before reading the socket again. No protocol lives here: the
upgrade layer and the protocol packages stand on it.
"""
