"""The probe candidate both backends run once to observe, from inside, what isolation is in effect."""
from __future__ import annotations

PROBE_SOURCE = """
import os, socket
def probe(trusted_pid):
    try:
        with open(f"/proc/{trusted_pid}/environ", "rb") as f:
            f.read(1)
        environ = "readable by candidates"
    except OSError as e:
        environ = f"not readable by candidates ({type(e).__name__})"
    try:
        nics = ",".join(sorted(name for _, name in socket.if_nameindex()))
    except OSError:
        nics = "?"
    return {"proc_environ": environ, "interfaces": nics, "uid": str(os.getuid()),
            "env_keys": ",".join(sorted(os.environ))}
"""
PROBE_ENTRIES = ("probe",)
