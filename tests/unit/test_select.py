"""``run NAME`` / ``deploy NAME``: a name on the command line is read as the domains file's
names are (case, U-label, a trailing dot), and one that names nothing is refused with the
words the operator wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from certfleet.errors import ConfigError
from certfleet.fleet import select
from certfleet.spec import CertSpec, JobConfig

JOB = JobConfig("https://ca.invalid/dir", Path("/nonexistent"),
                certs=(CertSpec(("www.example.com", "example.com")),
                       CertSpec(("xn--bcher-kva.example",)),
                       CertSpec(("*.example.org",), challenge="dns-01"),
                       CertSpec(("192.0.2.1",))))


@pytest.mark.parametrize(("written", "first"), [
    ("www.example.com", "www.example.com"), ("WWW.Example.COM", "www.example.com"),
    ("example.com.", "www.example.com"), ("bücher.example", "xn--bcher-kva.example"),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example"), ("*.EXAMPLE.org", "*.example.org"),
    ("192.0.2.1", "192.0.2.1"),
])
def test_a_name_is_read_as_the_domains_file_reads_it(written: str, first: str) -> None:
    assert [spec.name for spec in select(JOB, [written])] == [first]


def test_names_that_are_listed_nowhere_are_named_as_written() -> None:
    with pytest.raises(ConfigError) as caught:
        select(JOB, ["WWW.example.com", "Nope.Example", "a b", "bad..name"])
    assert str(caught.value) == "not in the domains file: Nope.Example, a b, bad..name"
