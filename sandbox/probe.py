"""The probe candidate both backends run once to observe, from inside, what isolation is in effect."""
from __future__ import annotations

PROBE_SOURCE = """
import os, socket
def probe(trusted_pid, checkout=None):
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
    seen = "not asked"
    if checkout:
        try:
            names = ("evaluators", "problems", "evolve", "sandbox")
            trusted = [n for n in os.listdir(checkout) if n in names]
            seen = "sees " + ",".join(sorted(trusted)) if trusted else "sees none of its packages"
        except OSError as e:
            seen = f"cannot list it ({type(e).__name__})"
    return {"checkout": seen, "proc_environ": environ, "interfaces": nics, "uid": str(os.getuid()),
            "env_keys": ",".join(sorted(os.environ))}
"""
PROBE_ENTRIES = ("probe",)
