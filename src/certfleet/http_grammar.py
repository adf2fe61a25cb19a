"""What HTTP's field lines are made of (RFC 9110 §5.1, §5.5, §5.6.2), in one place for the
client's framing (``http_framing``) and the http-01 responder's request parser
(``solvers.http_head``). Touches nothing.
"""

from __future__ import annotations

import re

#: A token: a method, a field name (``tchar``s, RFC 9110 §5.6.2).
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"

#: ``name:value`` with the value whole, its white space included (stripped after): no
#: control character but tab, obs-text allowed. A lazy value between two runs of white
#: space, as the RFC's ABNF reads, backtracks in the cube of the spaces before a bad byte
#: (minutes for one line of a head).
FIELD_LINE = re.compile(rb"(" + TOKEN + rb"):([\t\x20-\x7e\x80-\xff]*)")
