"""Environment set-up: pw.x, pseudopotentials, AiiDA profile, computer and code.

Everything here is idempotent: a second call checks what exists and does nothing more.
"""
