"""pyrs: the test harness of mod_resumable (modelled on httpd's pyhttpd).

env.py     RsEnv / RsArea: generated httpd config, start/stop, error log checks
client.py  raw HTTP/1.1 client, partial sends, tus helpers, sha256 helpers
"""
