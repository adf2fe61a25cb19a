"""certfleet.config and certfleet.domains_file: the domains file and certfleet.toml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certfleet.config import ConfigErrors, load_job
from certfleet.config import domains as domains_file
from certfleet.config.domains import parse_domains
from certfleet.errors import ConfigError
from certfleet.keytypes import KeyType
from certfleet.layout import placement
from certfleet.spec import CertDefaults, CertSpec, HostSettings, JobConfig, Target, TlsProbe

# The seed's domains.txt, verbatim.
SEED = (
    "# ACME domain configuration file.\n"
    "# format: domain|server:dir server:dir ...\n"
    "www.example.com|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs\n"
    "www.example.net|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs\n"
)
SEED_TARGETS = (Target("/some/where/Certs", "198.51.100.11"),
                Target("/some/where/Certs", "198.51.100.12"))
# The seed's file with a directory per certificate, so the two do not overwrite each other.
SEED_OWN_DIRS = "".join(
    line.replace("Certs", "Certs/" + line.split("|")[0]) + "\n" if "|" in line else line + "\n"
    for line in SEED.splitlines())
DEFAULT = CertDefaults()
DNS = CertDefaults(challenge="dns-01")


def parse(text: str | bytes, default: CertDefaults = DEFAULT, **kw: Any) -> list[CertSpec]:
    data = text.encode() if isinstance(text, str) else text
    return parse_domains(data, "domains.txt", default=default, **kw)


def problems_of(text: str | bytes, **kw: Any) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        parse(text, **kw)
    return info.value.problems


# --- the domains file --------------------------------------------------------------------

def test_seed_domains_txt_parses_exactly() -> None:
    assert parse(SEED) == [
        CertSpec(names=("www.example.com",), targets=SEED_TARGETS, source="domains.txt:3"),
        CertSpec(names=("www.example.net",), targets=SEED_TARGETS, source="domains.txt:4"),
    ]


@pytest.mark.parametrize(
    ("line", "names", "targets"),
    [
        ("a.example.com b.example.com c.example.com",
         ("a.example.com", "b.example.com", "c.example.com"), ()),
        ("a.example.com|", ("a.example.com",), ()),
        ("a.example.com |   ", ("a.example.com",), ()),
        ("a.example.com | /srv/certs", ("a.example.com",), (Target("/srv/certs"),)),
        ("a.example.com | /", ("a.example.com",), (Target("/"),)),
        ("a.example.com|[::1]:/etc/ssl", ("a.example.com",), (Target("/etc/ssl", "::1"),)),
        ("a.example.com | deploy@web1:/etc/ssl/x/", ("a.example.com",),
         (Target("/etc/ssl/x", "web1", "deploy"),)),
        ("a.example.com | _d.x-1@[2001:db8::1]:/x", ("a.example.com",),
         (Target("/x", "2001:db8::1", "_d.x-1"),)),
        ("\t WWW.Example.COM.  bücher.example\t| web_1.lan:/a//b/ /local//dir/ ",
         ("www.example.com", "xn--bcher-kva.example"),
         (Target("/a/b", "web_1.lan"), Target("/local/dir"))),
        ("a.example.com # a comment | h:/x", ("a.example.com",), ()),
        ("a.example.com|h:/x#comment", ("a.example.com",), (Target("/x", "h"),)),
        ("a.example.com | h:/x h2:/x h:/y", ("a.example.com",),
         (Target("/x", "h"), Target("/x", "h2"), Target("/y", "h"))),
        ("a.example.com | 192.0.2.1:/x host.example:/a:b/c=d,e+f@g%h", ("a.example.com",),
         (Target("/x", "192.0.2.1"), Target("/a:b/c=d,e+f@g%h", "host.example"))),
        ("a.example.com | /srv/証明書", ("a.example.com",), (Target("/srv/証明書"),)),
    ],
)
def test_extended_lines(line: str, names: tuple[str, ...], targets: tuple[Target, ...]) -> None:
    (spec,) = parse(f"# header\n\n{line}\n")
    assert spec.names == names
    assert spec.targets == targets
    assert spec.source == "domains.txt:3"


def test_target_key_and_host_key() -> None:
    (spec,) = parse("a.example.com | u@[::1]:/x web1:/y /z")
    assert [t.key for t in spec.targets] == ["u@[::1]:/x", "web1:/y", "/z"]
    assert [t.host_key for t in spec.targets] == ["::1", "web1", ""]
    assert [t.is_local for t in spec.targets] == [False, False, True]


BAD_LINES = [
    # paths
    ("a.example.com | h:/x/../y", "h:/x/../y: '..' component in path"),
    ("a.example.com | ../x", "../x: not a target"),
    ("a.example.com | h:/x/./y", "'.' component in path"),
    ("a.example.com | h:x/y", "h:x/y: path must be absolute"),
    ("a.example.com | h:", "h:: empty path"),
    ("a.example.com | relative/dir", "not a target"),
    ("a.example.com | h:~/x", "path must be absolute"),
    ("a.example.com | h:/home/~deploy", "'~' is not expanded"),
    ("a.example.com | h:/x/-rf", "component must not start with '-'"),
    ("a.example.com | h:/" + "a" * 1100, "path longer than 1024"),
    # options smuggled into ssh or scp
    ("a.example.com | -oProxyCommand=sh:/x", "-oProxyCommand=sh:/x: a target must not start"),
    ("a.example.com | -oProxyCommand=sh", "a target must not start with '-'"),
    ("a.example.com | u@-oProxyCommand=x:/y", "host must not start with '-'"),
    ("a.example.com | -u@h:/x", "a target must not start with '-'"),
    # users and hosts
    ("a.example.com | @h:/x", "empty user"),
    ("a.example.com | 1abc@h:/x", "user must be letters"),
    ("a.example.com | " + "u" * 33 + "@h:/x", "user longer than 32"),
    ("a.example.com | u$x@h:/x", "shell metacharacter '$' in user"),
    ("a.example.com | h$(id):/x", "shell metacharacter '$' in host"),
    ("a.example.com | :/x", "empty host"),
    ("a.example.com | h%x:/x", "host must be a name"),
    ("a.example.com | " + "h" * 254 + ":/x", "host longer than 253 characters"),
    ("a.example.com | 999.1.1.1:/x", "not a valid IPv4 address"),
    ("a.example.com | fe80::1:/x", "an IPv6 address must be in brackets"),
    ("a.example.com | [::1/x", "expected [IPv6]:/dir"),
    ("a.example.com | [zz]:/x", "[zz] is not an IPv6 address"),
    ("a.example.com | [fe80::1%eth0]:/x", "zone identifiers"),
    ("a.example.com | h:22:/x", "no port here"),
    ("a.example.com | h:/x h:/x/", "h:/x/: target given twice on this line"),
    # names
    ("a" * 64 + ".example.com", "label longer than 63"),
    (".".join(["a" * 63] * 4) + ".com", "name longer than 253"),
    ("xn--zz.example.com", "bad punycode"),
    ("a.*.example.com", "a wildcard is allowed only as the whole first label"),
    ("*a.example.com", "a wildcard is allowed only"),
    ("*.example.com", "*.example.com: a wildcard needs challenge dns-01"),
    ("example.com *.example.com | /x", "*.example.com: a wildcard needs challenge dns-01"),
    ("localhost", "a name needs at least two labels"),
    ("a..example.com", "empty label"),
    ("a_b.example.com", "is not letters, digits and hyphens"),
    ("a.example.com A.Example.Com.", "a.example.com: named twice on this line"),
    ("| h:/x", "no name before '|'"),
    # the line itself
    ("a.example.com\x00", "control character \\x00"),
    ("a.example.com\x1b[31m", "control character \\x1b"),
    ("a.example.com\rb.example.com", "control character \\r"),
    ("a.example.com\u00a0b.example.com", "invisible character U+00A0"),
    ("a.example.com\u3000b.example.com", "invisible character U+3000"),
    ("a.example.com \u200b", "invisible character U+200B"),
    ("a.example.com " + "b" * 5000, "line longer than 4096 bytes"),
    (" ".join(f"n{i}.example.com" for i in range(101)), "more than 100 names"),
    ("a.example.com | " + " ".join(f"/d{i}" for i in range(101)), "more than 100 targets"),
]


@pytest.mark.parametrize(("line", "phrase"), BAD_LINES)
def test_malformed_line_names_file_line_and_fault(line: str, phrase: str) -> None:
    problems = problems_of(f"ok.example.com | /x\n# comment\n{line}\nok2.example.com\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith("domains.txt:3: ")
    assert phrase in problems[0]


@pytest.mark.parametrize("meta", sorted(set(";|&$`'\"<>(){}*?!\\")))
def test_shell_metacharacters_in_path_are_refused(meta: str) -> None:
    (problem,) = problems_of(f"a.example.com | h:/srv/x{meta}y")
    assert problem.startswith("domains.txt:1: ")
    if meta == "|":   # a second '|' makes it part of a target, refused all the same
        assert "shell metacharacter '|'" in problem
    else:
        assert f"shell metacharacter {meta!r} in path" in problem


def test_bad_target_token_is_shown_escaped() -> None:
    (problem,) = problems_of("a.example.com | h:/x\\\x7f")
    assert "\x7f" not in problem


def test_line_limits_allow_100_names_and_100_targets() -> None:
    names = " ".join(f"n{i}.example.com" for i in range(100))
    targets = " ".join(f"h{i}:/d" for i in range(100))
    (spec,) = parse(f"{names} | {targets}")
    assert len(spec.names) == 100
    assert len(spec.targets) == 100
    (spec,) = parse("a.example.com | /" + "a" * 1023)
    assert len(spec.targets[0].path) == 1024


def test_duplicate_name_across_lines() -> None:
    problems = problems_of("a.example.com\nb.example.com c.example.com\n\nA.EXAMPLE.COM.\n"
                           "d.example.com c.example.com\n")
    assert problems == ["domains.txt:4: a.example.com already on line 1",
                        "domains.txt:5: c.example.com already on line 2"]


def test_wildcard_with_dns01() -> None:
    line = "*.example.com example.com | /x\n"
    (spec,) = parse(line, default=DNS)
    assert spec.names == ("*.example.com", "example.com")
    assert spec.challenge == "dns-01"
    (spec,) = parse(line, certs={"*.example.com": DNS})
    assert spec.challenge == "dns-01"
    # a per-certificate section is keyed by the first name only
    problems = problems_of(line, certs={"example.com": DNS})
    assert "a wildcard needs challenge dns-01" in problems[0]


def test_per_certificate_settings() -> None:
    special = CertDefaults(key_type=KeyType.RSA2048, challenge="tls-alpn-01", reuse_key=True)
    first, second = parse("a.example.com\nb.example.com\n", certs={"b.example.com": special})
    assert (first.key_type, first.challenge, first.reuse_key) == (KeyType.EC256, "http-01",
                                                                  False)
    assert (second.key_type, second.challenge, second.reuse_key) == (KeyType.RSA2048,
                                                                     "tls-alpn-01", True)


def test_crlf_and_bom_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + SEED.replace("\n", "\r\n").encode()
    assert parse(data) == parse(SEED)
    # the same through the careful per-line path (a non-ASCII name forces it)
    data = b"\xef\xbb\xbf" + (SEED + "b\u00fccher.example\n").replace("\n", "\r\n").encode()
    specs = parse(data)
    assert specs[:2] == parse(SEED)
    assert specs[2].names == ("xn--bcher-kva.example",)


def test_non_utf8_bytes_name_the_line() -> None:
    problems = problems_of(b"a.example.com\n\xff\xfe.example.com\nb.example.com | /x\xc3\n")
    assert problems == [
        "domains.txt:2: not valid UTF-8 (byte 0xff at column 1)",
        "domains.txt:3: not valid UTF-8 (byte 0xc3 at column 19)",
    ]


def test_file_size_cap() -> None:
    problems = problems_of(b"#" * (domains_file.MAX_FILE + 1))
    assert problems == ["domains.txt: file larger than 16 MiB"]


def test_several_problems_are_reported_together() -> None:
    text = ("good.example.com | /x\n"
            "bad..example.com\n"
            "ok.example.com | h:/x/../y -oX:/z\n"
            "*.example.com\n")
    with pytest.raises(ConfigErrors) as info:
        parse(text)
    assert [p.split(": ")[0] for p in info.value.problems] == [
        "domains.txt:2", "domains.txt:3", "domains.txt:3", "domains.txt:4"]
    assert str(info.value) == "\n".join(info.value.problems)
    assert isinstance(info.value, ConfigError)


def test_at_most_100_problems_then_a_count() -> None:
    with pytest.raises(ConfigErrors) as info:
        parse("".join(f"bad{i}\n" for i in range(250)))
    assert len(info.value.problems) == 100
    assert info.value.more == 150
    assert info.value.problems[-1].startswith("domains.txt:100: ")
    assert str(info.value).endswith("\n... and 150 more")


def test_config_errors_caps_what_it_is_given() -> None:
    errors = ConfigErrors([f"f:{i}: x" for i in range(105)])
    assert len(errors.problems) == 100
    assert str(errors).endswith("f:99: x\n... and 5 more")


def test_100000_lines_parse() -> None:
    lines = [f"host{i}.example.com alt{i}.example.com | 198.51.100.{i % 200}:/some/where/Certs "
             f"deploy@web{i % 50}:/etc/ssl/x /srv/{i % 7}\n" for i in range(100_000)]
    specs = parse("# generated\n" + "".join(lines))
    assert len(specs) == 100_000
    assert specs[-1].names == ("host99999.example.com", "alt99999.example.com")
    assert specs[-1].targets == (Target("/some/where/Certs", "198.51.100.199"),
                                 Target("/etc/ssl/x", "web49", "deploy"), Target("/srv/4"))
    assert specs[-1].source == "domains.txt:100001"


# The common line takes a shortcut; the careful path must give the same answers.
CORPUS = [
    SEED,
    "a.example.com a.example.com\n",
    "a.example.com\nb.example.com a.example.com\n",
    "*.example.com | /x\n",
    "Upper.Example.com | h:/x\n",
    "trailing.example.com. | h:/x\n",
    "xn--bcher-kva.example\n",
    "a.example.com | h:/x h:/x\n",
    "a.example.com | h:/x\nb.example.com | h:/x h:/x/\n",
    "a.example.com | h:/x h:/y\nb.example.com | h:/y h:/x\n",
    "1.2.3.4\n",
    "1.2.3.4 | /x\n",
    "a.example.com 1.2.3.4\ta.example.123 | /x\n",
    "a.example.123\n",
    "a-.example.com\n",
    "-a.example.com\n",
    "a.example.com |\n|\n",
]


@pytest.mark.parametrize("text", CORPUS)
def test_shortcut_and_careful_path_agree(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def outcome() -> object:
        try:
            return parse(text, certs={"*.example.com": DNS})
        except ConfigErrors as exc:
            return exc.problems

    fast = outcome()
    monkeypatch.setattr(domains_file, "_PLAIN_NAMES", re.compile(r"(?!)"))
    assert outcome() == fast


NAMES = st.sampled_from(["a.example.com", "b.example.com", "A.example.com", "*.example.com",
                         "*.b.example.com", "c.example.com.", "xn--bcher-kva.example",
                         "bücher.example", "1.2.3.4", "x.y", "a" * 64 + ".com"])
TARGETS = st.sampled_from(["h:/x", "h:/x/", "u@h:/x", "/l", "[::1]:/x", "bad", "-o:/x"])
LINES = st.lists(st.tuples(st.lists(NAMES, min_size=1, max_size=3),
                           st.lists(TARGETS, max_size=3)), max_size=8)


@settings(max_examples=300)
@given(LINES)
def test_shortcut_and_careful_path_agree_on_generated_files(
        lines: list[tuple[list[str], list[str]]]) -> None:
    text = "".join(" ".join(names) + " | " + " ".join(targets) + "\n" for names, targets in lines)

    def outcome() -> object:
        try:
            return parse(text, certs={"*.example.com": DNS})
        except ConfigErrors as exc:
            return exc.problems

    fast = outcome()
    with mock.patch.object(domains_file, "_PLAIN_NAMES", re.compile(r"(?!)")):
        assert outcome() == fast


@given(st.from_regex(domains_file._PLAIN_NAME, fullmatch=True))
def test_plain_names_need_no_normalizing(name: str) -> None:
    if len(name) <= 253:
        assert domains_file.fast_name(name) == name
        assert domains_file.normalize_identifier(name) == name


LINE_PIECES = st.sampled_from([
    "a.example.com", "B.example.com", "*.example.com", "xn--bcher-kva.example", "bücher.example",
    "a.example.com.", "|", " ", "\t", "#", "h:/x", "h:/x/", "u@h:/y", "[::1]:/z", "/local",
    "-o", "..", "~", ";", "\r", "\n", "\r\n", "\x00", "\u3000", ":", "@", "[", "]",
])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300),
                 st.text(max_size=200).map(str.encode),
                 st.lists(LINE_PIECES, max_size=30).map(lambda parts: "".join(parts).encode())))
def test_any_input_parses_or_raises_config_errors(data: bytes) -> None:
    problems: list[str] = []
    try:
        specs = parse(data, certs={"*.example.com": DNS})
    except ConfigErrors as exc:
        problems, specs = exc.problems, []
    assert len(problems) <= 100
    assert all(p.startswith("domains.txt:") for p in problems)
    for spec in specs:
        assert spec.names
        for target in spec.targets:
            assert target.path.startswith("/")
            assert ".." not in target.path.split("/")


# --- certfleet.toml ----------------------------------------------------------------------

FULL_TOML = """\
state_dir = "state"
domains = "domains.txt"
concurrency = 4
renew_fraction = 0.3333

[ca]
directory = "https://acme-v02.api.letsencrypt.org/directory"
ca_bundle = "pebble-ca.pem"
allow_http = false
contact = ["hostmaster@example.com", "mailto:ops@example.com"]
account_key_type = "ec384"

[challenge]
webroot = "/var/www/acme"

[defaults]
key_type = "ec256"
challenge = "http-01"
reuse_key = false

[ssh]
config = ["~/.ssh/config", "ssh_config"]
known_hosts = "~/.ssh/known_hosts"

[hosts.default]
user = "deploy"
port = 22
identity = "~/.ssh/id_ed25519"
reload = ["sudo", "systemctl", "reload", "nginx"]
owner = "root"
group = "www-data"
mode = "0644"
key_mode = 0o600
files = { "fullchain.pem" = "{name}.crt", "privkey.pem" = "{name}.key", \
"cert.pem" = "{name}.cert.pem", "chain.pem" = "{name}.chain.pem" }
probe = { port = 443, address = "127.0.0.1" }

[hosts."198.51.100.11"]
port = 2222
reload = []

[hosts.unused]
user = "nobody"

[certs."WWW.example.com"]
key_type = "rsa2048"
challenge = "dns-01"
reuse_key = true
"""


def write(tmp_path: Path, toml: str, domains: str | None = SEED) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "certfleet.toml").write_text(toml)
    if domains is not None:
        (conf / "domains.txt").write_text(domains)
    (conf / "pebble-ca.pem").write_text("")
    return conf / "certfleet.toml"


def load(path: Path, **kw: Any) -> JobConfig:
    """``load_job`` with the domains file beside the TOML (which names none itself)."""
    return load_job(path, domains_path=path.parent / "domains.txt", **kw)


def load_problems(path: Path | None, **kw: Any) -> list[str]:
    if path is not None and "domains_path" not in kw and b"domains =" not in path.read_bytes():
        kw["domains_path"] = path.parent / "domains.txt"
    with pytest.raises(ConfigErrors) as info:
        load_job(path, **kw)
    return info.value.problems


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_full_example(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path, FULL_TOML)
    job = load_job(path)
    conf = tmp_path / "conf"
    assert isinstance(job, JobConfig)
    assert job.state_dir == conf / "state"
    assert not job.state_dir.exists()      # checked, never created
    assert job.directory == "https://acme-v02.api.letsencrypt.org/directory"
    assert job.ca_bundle == conf / "pebble-ca.pem"
    assert job.allow_http is False
    assert job.contact == ("hostmaster@example.com", "ops@example.com")
    assert job.account_key_type is KeyType.EC384
    assert job.challenges.webroot == Path("/var/www/acme")
    assert job.challenges.http_listen is None
    assert job.concurrency == 4
    assert job.renew_fraction == 0.3333
    assert job.ssh_config == (home / ".ssh/config", conf / "ssh_config")
    assert job.known_hosts == home / ".ssh/known_hosts"
    default = job.hosts["default"]
    assert default == HostSettings(
        user="deploy", port=22, identity=home / ".ssh/id_ed25519",
        reload=("sudo", "systemctl", "reload", "nginx"),
        files={"fullchain.pem": "{name}.crt", "privkey.pem": "{name}.key",
               "cert.pem": "{name}.cert.pem", "chain.pem": "{name}.chain.pem"},
        owner="root", group="www-data", mode=0o644, key_mode=0o600,
        probe=TlsProbe(port=443, address="127.0.0.1"))
    web = job.hosts["198.51.100.11"]           # its own settings over [hosts.default]
    assert (web.port, web.reload, web.user, web.mode) == (2222, (), "deploy", 0o644)
    assert job.host(Target("/x", "198.51.100.12")) == default
    where = placement(Target("/x", "198.51.100.12"), default, "www.example.com")
    assert where.path("fullchain.pem") == "/x/www.example.com.crt"
    com, net = job.certs
    assert com.names == ("www.example.com",)
    assert com.targets == SEED_TARGETS
    assert (com.key_type, com.challenge, com.reuse_key) == (KeyType.RSA2048, "dns-01", True)
    assert (net.key_type, net.challenge, net.reuse_key) == (KeyType.EC256, "http-01", False)
    assert com.source == f"{conf / 'domains.txt'}:3"


def test_no_config_file_uses_defaults_and_overrides(tmp_path: Path) -> None:
    domains = tmp_path / "domains.txt"
    domains.write_text(SEED_OWN_DIRS)
    job = load_job(None, domains_path=domains,
                   overrides={"http_listen": "[::1]:8402", "contact": ["a@example.com"],
                              "webroot": None})
    assert job.directory == "https://acme-v02.api.letsencrypt.org/directory"
    assert job.state_dir == Path("/var/lib/certfleet")
    assert job.challenges.http_listen == "[::1]:8402"
    assert job.contact == ("a@example.com",)
    assert [c.name for c in job.certs] == ["www.example.com", "www.example.net"]
    assert job.hosts == {}
    assert load_job(None).certs == ()


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_TOML)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("other.example.com\n")
    path.write_text(FULL_TOML.replace('[certs."WWW.example.com"]', '[certs."other.example.com"]'))
    job = load_job(path, domains_path=elsewhere, overrides={
        "directory": "letsencrypt-staging", "state_dir": tmp_path / "s", "concurrency": 9,
        "http_listen": "127.0.0.1:8402", "allow_http": True, "contact": "x@example.com",
        "ca_bundle": str(tmp_path / "conf" / "pebble-ca.pem")})
    assert job.directory == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert job.state_dir == tmp_path / "s"
    assert job.concurrency == 9
    assert job.challenges == type(job.challenges)(webroot=None, http_listen="127.0.0.1:8402")
    assert job.allow_http is True
    assert job.contact == ("x@example.com",)
    assert [c.name for c in job.certs] == ["other.example.com"]


def test_bad_overrides_are_reported(tmp_path: Path) -> None:
    problems = load_problems(None, overrides={"concurrency": 0, "directory": "ftp://x",
                                              "http_listen": "nowhere", "webroot": 3})
    assert problems == [
        "command line: concurrency must be an integer from 1 to 10000, not 0",
        "command line: directory 'ftp://x' is not an https:// URL or one of letsencrypt, "
        "letsencrypt-staging, google, google-staging, zerossl, sslcom-rsa, sslcom-ecc, actalis",
        "command line: http_listen 'nowhere': expected HOST:PORT",
        "command line: webroot: unexpected int value",
    ]
    with pytest.raises(TypeError):
        load_job(None, overrides={"colour": "blue"})


def test_relative_paths_are_relative_to_the_toml_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, 'state_dir = "st"\ndomains = "sub/d.txt"\n[ca]\n'
                           'ca_bundle = "pebble-ca.pem"\n[challenge]\nwebroot = "www"\n',
                 domains=None)
    (tmp_path / "conf" / "sub").mkdir()
    (tmp_path / "conf" / "sub" / "d.txt").write_text("a.example.com\n")
    monkeypatch.chdir(tmp_path)
    job = load_job(Path("conf/certfleet.toml"))
    conf = tmp_path / "conf"
    assert job.state_dir == conf / "st"
    assert job.ca_bundle == conf / "pebble-ca.pem"
    assert job.challenges.webroot == conf / "www"
    assert job.certs[0].source == f"{conf / 'sub' / 'd.txt'}:1"


def test_tilde_is_expanded(tmp_path: Path, home: Path) -> None:
    path = write(tmp_path, 'state_dir = "~/certfleet"\n')
    assert load_job(path).state_dir == home / "certfleet"


SEVEN = "# 1\n# 2\n# 3\n# 4\n[defaults]\n# 6\n"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("concurrency = 4\nstate_dir = \n", "certfleet.toml:2: Invalid value (column 13)"),
        ("[ca\n", "certfleet.toml:1: Expected ']' at the end of a table declaration"),
        ("reload = [\n", "certfleet.toml:2: Invalid value at the end of the file"),
        ("a = 1\na = 2\n", "certfleet.toml:2: Cannot overwrite a value (column 6)"),
        (SEVEN + "colour = 'red'\n", "certfleet.toml:7: unknown option 'colour' in [defaults]"),
        ("colour = 1\n", "certfleet.toml:1: unknown option 'colour'"),
        ("\n[colour]\n", "certfleet.toml:2: unknown section [colour]"),
        ("[hosts.\"web.1\"]\n\nuser = 'a'\ncolor = 1\n",
         "certfleet.toml:4: unknown option 'color' in [hosts.\"web.1\"]"),
        ("ca.directory = 'https://x.example/'\nca.colour = 1\n",
         "certfleet.toml:2: unknown option 'colour' in [ca]"),
        ("[ssh]\nconfig = 3\n", "certfleet.toml:2: config must be a list of paths, not an "
                                "integer"),
        ("concurrency = \"4\"\n", "certfleet.toml:1: concurrency must be an integer, not a "
                                  "string"),
        ("concurrency = true\n", "certfleet.toml:1: concurrency must be an integer, not true "
                                 "or false"),
        ("concurrency = 0\n", "certfleet.toml:1: concurrency must be an integer from 1 to 10000, "
                              "not 0"),
        ("\nconcurrency = 10001\n", "certfleet.toml:2: concurrency must be an integer from 1 to "
                                 "10000, not 10001"),
        ("[ca]\nrequest_rate = 0\n", "certfleet.toml:2: request_rate must be a number of "
                                    "requests per second from 0.1 to 10000, not 0"),
        ("[ca]\nrequest_rate = nan\n", "certfleet.toml:2: request_rate must be a number"),
        ("[ca]\nrequest_rate = '5'\n", "certfleet.toml:2: request_rate must be requests per "
                                      "second, not a string"),
        ("[ca]\nnew_order_limit = 0\n", "certfleet.toml:2: new_order_limit must be an "
                                       "integer from 1 to 10000000, not 0"),
        ("[ca]\nnew_order_limit = 2.5\n", "certfleet.toml:2: new_order_limit must be an "
                                         "integer"),
        ("[ca]\nnew_order_window = 10\n", "certfleet.toml:2: new_order_window must be a "
                                         "number of seconds from 60 to 2592000, not 10"),
        ("renew_fraction = 1\n", "certfleet.toml:1: renew_fraction must be between 0 and 1"),
        ("renew_fraction = 0.0\n", "certfleet.toml:1: renew_fraction must be between 0 and 1"),
        ("[ca]\nallow_http = 'yes'\n", "certfleet.toml:2: allow_http must be true or false, "
                                       "not a string"),
        ("[ca]\ncontact = ['not an address']\n", "certfleet.toml:2: contact 'not an address' "
                                                 "is not an e-mail address"),
        ("[ca]\ncontact = ['a@b@c']\n", "is not an e-mail address"),
        ("[ca]\ncontact = [1]\n", "is not an e-mail address"),
        ("[ca]\naccount_key_type = 'dsa'\n", "certfleet.toml:2: unknown key type 'dsa'"),
        ("[ca]\ndirectory = 'http://localhost:14000/dir'\n",
         "certfleet.toml:2: a plain http:// directory needs allow_http = true"),
        ("[ca]\ndirectory = 'acme.example/dir'\n", "is not an https:// URL"),
        ("[ca]\ndirectory = 'https://127.0.0.1:99999/dir'\n",
         "certfleet.toml:2: directory 'https://127.0.0.1:99999/dir' is not an https:// URL"),
        ("[ca]\ndirectory = 'https://127.0.0.1:0/dir'\n", "is not an https:// URL"),
        ("[ca]\ndirectory = 'https://acme.example:x/dir'\n", "is not an https:// URL"),
        ("[ca]\ndirectory = 'https://[::1/dir'\n",
         "certfleet.toml:2: directory 'https://[::1/dir' is not an https:// URL"),
        ("[ca]\nfallback = ['https://127.0.0.1:0/dir']\n", "is not an https:// URL"),
        ("[ca]\n\nca_bundle = 'missing.pem'\n", "certfleet.toml:3: ca_bundle "),
        ("[defaults]\nkey_type = 'rsa1024'\n", "certfleet.toml:2: unknown key type 'rsa1024'"),
        ("[defaults]\nchallenge = 'http-02'\n", "certfleet.toml:2: unknown challenge 'http-02'"),
        ("[defaults]\nreuse_key = 1\n", "certfleet.toml:2: reuse_key must be true or false"),
        ("[challenge]\nwebroot = '/w'\nhttp_listen = '127.0.0.1:80'\n",
         "certfleet.toml:3: give webroot or http_listen, not both"),
        ("[challenge]\nhttp_listen = '127.0.0.1'\n", "certfleet.toml:2: http_listen "
                                                     "'127.0.0.1': expected HOST:PORT"),
        ("[challenge]\nhttp_listen = '127.0.0.1:99999'\n", "expected HOST:PORT"),
        ("[hosts.default]\nreload = 'systemctl reload nginx'\n",
         "certfleet.toml:2: reload must be a list (argv), not a shell string"),
        ("[hosts.default]\nreload = ['a', 1]\n", "reload must be a list of printable strings"),
        ("[hosts.default]\nmode = '0x644'\n", "certfleet.toml:2: mode '0x644' is not an octal "
                                              "mode"),
        ("[hosts.default]\nmode = '0999'\n", "is not an octal mode"),
        ("[hosts.default]\nmode = 644\n", "certfleet.toml:2: mode 644 is not octal"),
        ("[hosts.default]\nmode = 1.5\n", "mode must be an octal string"),
        ("[hosts.default]\nmode = '4755'\n", "only permission bits"),
        ("[hosts.default]\nmode = '0666'\n", "mode 0o666 gives others too much access"),
        ("[hosts.default]\nkey_mode = '0644'\n", "key_mode 0o644 gives others too much access"),
        ("[hosts.default]\nfiles = { 'fullchain.pem' = 'a/b' }\n",
         "certfleet.toml:2: files: fullchain.pem = 'a/b' contains '/'"),
        ("[hosts.default]\nfiles = { 'fullchain.pem' = '..' }\n", "is not a file name"),
        ("[hosts.default]\nfiles = { 'fullchain.pem' = '-x' }\n", "starts with '-'"),
        ("[hosts.default]\nfiles = { 'fullchain.pem' = '{nme}.crt' }\n",
         "unknown placeholder"),
        ("[hosts.default]\nfiles = { 'fullchain.pem' = '$(id)' }\n", "shell metacharacter"),
        ("[hosts.default]\nfiles = { 'cert.pem' = 'x', 'chain.pem' = 'x' }\n",
         "cert.pem and chain.pem would both be written to 'x'"),
        ("[hosts.default]\nfiles = { 'cert.pem' = 'fullchain.pem' }\n",
         "cert.pem and fullchain.pem would both be written"),
        ("[hosts.default]\nfiles = { 'key.pem' = 'x' }\n", "files: unknown file 'key.pem'"),
        ("[hosts.default]\nfiles = { 'cert.pem' = 1 }\n", "must map to a file name"),
        ("[hosts.default]\nuser = '-oProxyCommand=x'\n", "user must not start with '-'"),
        ("[hosts.default]\nowner = 'ro ot'\n", "owner must be letters"),
        ("[hosts.default]\nport = 0\n", "port must be an integer from 1 to 65535"),
        ("[hosts.default]\nprobe = { port = 70000 }\n", "probe: port must be"),
        ("[hosts.default]\nprobe = { address = 'a b' }\n", "probe: address must be"),
        ("[hosts.default]\nprobe = { colour = 1 }\n", "probe: unknown option 'colour'"),
        ("[hosts]\nuser = 'deploy'\n", "certfleet.toml:2: user must be a table "
                                       "[hosts.\"user\"], not a string"),
        ("hosts = 1\n", "certfleet.toml:1: hosts must be a table, not an integer"),
        ("[certs.\"nope.example.com\"]\nreuse_key = true\n",
         "certfleet.toml:1: [certs.\"nope.example.com\"]: no such certificate in the domains "
         "file"),
        ("[certs.\"bad..name\"]\n", "certfleet.toml:1: 'bad..name': empty label"),
        ("[certs.\"www.example.com\"]\n[certs.\"WWW.EXAMPLE.COM.\"]\n",
         "certfleet.toml:2: [certs.\"www.example.com\"] given twice"),
        ("[certs.\"www.example.com\"]\ncolour = 1\n",
         "certfleet.toml:2: unknown option 'colour' in [certs.\"www.example.com\"]"),
        ("[certs.'www.example.com']\nchallenge = 'dns-02'\n",
         "certfleet.toml:2: unknown challenge 'dns-02'"),
    ],
)
def test_toml_errors(tmp_path: Path, toml: str, expected: str) -> None:
    problems = load_problems(write(tmp_path, toml))
    assert len(problems) == 1, problems
    problem = problems[0].replace(str(tmp_path / "conf") + "/", "")
    assert problem.startswith("certfleet.toml:")
    assert expected in problem


def test_alternative_name_is_not_a_certs_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[certs."b.example.com"]\nreuse_key = true\n',
                 domains="a.example.com b.example.com\n")
    (problem,) = load_problems(path)
    assert problem.endswith(': [certs."b.example.com"]: b.example.com is an alternative name '
                            "(line 1); sections are keyed by a certificate's first name")


def test_wildcards_need_dns01_from_certs_or_defaults(tmp_path: Path) -> None:
    domains = "*.example.com example.com | /srv/x\n"
    (problem,) = load_problems(write(tmp_path, "", domains=domains))
    assert problem.endswith("domains.txt:1: *.example.com: a wildcard needs challenge dns-01 "
                            '(set challenge = "dns-01" in [certs."*.example.com"] or '
                            "[defaults])")
    path = write(tmp_path, '[certs."*.example.com"]\nchallenge = "dns-01"\n', domains=domains)
    assert load(path).certs[0].challenge == "dns-01"
    path = write(tmp_path, '[defaults]\nchallenge = "dns-01"\n', domains=domains)
    assert load(path).certs[0].challenge == "dns-01"


def test_problems_in_both_files_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency = 0\n[certs.\"x.example.com\"]\n",
                 domains="ok.example.com\nbad..example.com\n")
    problems = [p.replace(str(tmp_path / "conf") + "/", "") for p in load_problems(path)]
    assert [p.split(": ")[0] for p in problems] == [
        "certfleet.toml:1", "domains.txt:2", "certfleet.toml:2"]


def test_unreadable_files(tmp_path: Path) -> None:
    (problem,) = load_problems(tmp_path / "missing.toml", domains_path=None)
    assert problem == f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory"
    (problem,) = load_problems(None, domains_path=tmp_path)
    assert problem == f"command line: cannot read domains file {tmp_path}: not a regular file"
    path = write(tmp_path, "concurrency = 2\ndomains = 'missing.txt'\n")
    (problem,) = load_problems(path)
    assert problem == (f"{path}:2: cannot read domains file {path.parent / 'missing.txt'}: "
                       "no such file")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"a = 1\nb = '\xff'\n")
    assert load_problems(bad, domains_path=None) == [f"{bad}:2: not valid UTF-8 (byte 0xff)"]


def test_toml_bom_and_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.write_bytes(b"\xef\xbb\xbfconcurrency = 3\r\n[ca]\r\ncolour = 1\r\n")
    (problem,) = load_problems(path)
    assert problem == f"{path}:3: unknown option 'colour' in [ca]"


def test_mode_written_in_toml_octal(tmp_path: Path) -> None:
    path = write(tmp_path, "[hosts.default]\nmode = 0o640\nkey_mode = '600'\n",
                 domains=SEED_OWN_DIRS)
    settings_ = load(path).hosts["default"]
    assert (settings_.mode, settings_.key_mode) == (0o640, 0o600)


def test_hosts_no_target_uses_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, '[hosts."nowhere.example"]\nport = 2200\n', domains="")
    job = load(path)
    assert job.hosts["nowhere.example"].port == 2200
    assert job.certs == ()


def test_no_directory_is_created(tmp_path: Path) -> None:
    path = write(tmp_path, 'state_dir = "a/b/c"\n[challenge]\nwebroot = "w/x"\n')
    before = sorted(p.name for p in (tmp_path / "conf").iterdir())
    load_job(path)
    assert sorted(p.name for p in (tmp_path / "conf").iterdir()) == before


def test_the_seeds_domains_file_works_as_written(tmp_path: Path) -> None:
    seed = (
        "# ACME domain configuration file.\n"
        "# format: domain|server:dir server:dir ...\n"
        "www.example.com|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs\n"
        "www.example.net|198.51.100.11:/some/where/Certs 198.51.100.12:/some/where/Certs\n"
    )
    domains = tmp_path / "domains.txt"
    domains.write_text(seed)
    config = tmp_path / "certfleet.toml"
    config.write_text(f'domains = "{domains}"\n')
    job = load_job(config)
    paths = {(spec.name, t.host): placement(t, job.host(t), spec.name).path("fullchain.pem")
             for spec in job.certs for t in spec.targets}
    assert paths == {
        ("www.example.com", "198.51.100.11"): "/some/where/Certs/www.example.com/fullchain.pem",
        ("www.example.com", "198.51.100.12"): "/some/where/Certs/www.example.com/fullchain.pem",
        ("www.example.net", "198.51.100.11"): "/some/where/Certs/www.example.net/fullchain.pem",
        ("www.example.net", "198.51.100.12"): "/some/where/Certs/www.example.net/fullchain.pem",
    }
    # Another line changes neither certificate's paths.
    domains.write_text(seed + "shop.example.org|198.51.100.11:/some/where/Certs\n")
    more = load_job(config)
    assert {(spec.name, t.host): placement(t, more.host(t), spec.name).path("fullchain.pem")
            for spec in more.certs[:2] for t in spec.targets} == paths
    # Nor does removing a line: the one left keeps its paths (alone in the directory now).
    domains.write_text(seed.replace(seed.splitlines(keepends=True)[2], ""))
    fewer = load_job(config)
    assert [spec.name for spec in fewer.certs] == ["www.example.net"]
    assert {(spec.name, t.host): placement(t, fewer.host(t), spec.name).path("fullchain.pem")
            for spec in fewer.certs for t in spec.targets} == {
        key: path for key, path in paths.items() if key[0] == "www.example.net"}


def test_two_certificates_forced_onto_one_file_are_refused(tmp_path: Path) -> None:
    domains = tmp_path / "domains.txt"
    domains.write_text("www.example.com|h1:/certs\nwww.example.net|h1:/certs h2:/certs\n")
    config = tmp_path / "certfleet.toml"
    config.write_text(f'domains = "{domains}"\n[hosts.h1]\n'
                      'files = { "fullchain.pem" = "site.crt", "privkey.pem" = "{name}.key" }\n')
    with pytest.raises(ConfigErrors) as caught:
        load_job(config)
    assert caught.value.problems == [
        f"{domains}:2: h1:/certs: /certs/cert.pem is also written for www.example.com "
        f"({domains}:1); put {{name}} in the files = {{...}} of host h1, or drop files to give "
        "each certificate its own directory"]
    config.write_text(f'domains = "{domains}"\n[hosts.default]\n'
                      'files = { "cert.pem" = "{name}.cert.pem", "chain.pem" = "{name}.chain.pem",'
                      ' "fullchain.pem" = "{name}.fullchain.pem", "privkey.pem" = "{name}.key" }\n')
    job = load_job(config)
    assert [spec.name for spec in job.certs] == ["www.example.com", "www.example.net"]


def test_target_dir_trust_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "[hosts.default]\nallow_group_writable = true\n"
                 '[hosts."web1a"]\ntrust_target_dir = true\n', domains=SEED_OWN_DIRS)
    job = load(path)
    assert (job.hosts["default"].trust_target_dir,
            job.hosts["default"].allow_group_writable) == (False, True)
    assert (job.hosts["web1a"].trust_target_dir,
            job.hosts["web1a"].allow_group_writable) == (True, True)  # default's, inherited
    assert HostSettings().trust_target_dir is False
    assert HostSettings().allow_group_writable is False


def test_target_dir_trust_settings_must_be_booleans(tmp_path: Path) -> None:
    path = write(tmp_path, '[hosts.default]\ntrust_target_dir = "yes"\n'
                 "allow_group_writable = 1\n", domains=SEED_OWN_DIRS)
    assert load_problems(path) == [
        f"{path}:2: trust_target_dir must be true or false, not a string",
        f"{path}:3: allow_group_writable must be true or false, not an integer"]


def test_the_command_line_beats_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    """One precedence for every command (config/sources.py): --option, then CERTFLEET_*,
    then certfleet.toml, then the defaults; the file itself from --config, else
    CERTFLEET_CONFIG, else the default path."""
    from certfleet.config import sources

    def config(name: str, directory: str) -> Path:
        path = tmp_path / name
        path.write_text(f'state_dir = "{tmp_path / name}.state"\n'
                        f'[ca]\ndirectory = "{directory}"\n')
        path.chmod(0o600)
        return path

    first = config("first.toml", "https://first.example/dir")
    second = config("second.toml", "https://second.example/dir")
    env = {"CERTFLEET_CONFIG": str(second)}
    # The file: --config over CERTFLEET_CONFIG.
    assert sources.job_from({"config": str(first)}, env).directory == "https://first.example/dir"
    assert sources.job_from({}, env).directory == "https://second.example/dir"
    # A value: the command line over the environment over the file.
    env["CERTFLEET_DIRECTORY"] = "https://env.example/dir"
    assert sources.job_from({}, env).directory == "https://env.example/dir"
    assert sources.job_from({"directory": "https://cli.example/dir"}, env).directory \
        == "https://cli.example/dir"
    env["CERTFLEET_STATE_DIR"] = str(tmp_path / "env-state")
    assert sources.job_from({}, env).state_dir == tmp_path / "env-state"
    assert sources.job_from({"state_dir": str(tmp_path / "cli-state")}, env).state_dir \
        == tmp_path / "cli-state"


def test_the_default_configuration_file_is_read_when_nothing_names_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from certfleet.config import sources

    default = tmp_path / "etc" / "certfleet.toml"
    monkeypatch.setattr(sources, "DEFAULT_CONFIG", str(default))
    assert sources.config_path({}, {}) is None          # absent: none, and no error
    default.parent.mkdir()
    default.write_text('[ca]\ndirectory = "https://default-file.example/dir"\n')
    default.chmod(0o600)
    assert sources.config_path({}, {}) == default
    assert sources.job_from({}, {}).directory == "https://default-file.example/dir"
    assert sources.config_path({}, {"CERTFLEET_CONFIG": "/elsewhere.toml"}) \
        == Path("/elsewhere.toml")


@pytest.mark.parametrize("text", ["", "\n\n", "# every site moved\n  \n# gone too\n"])
def test_a_domains_file_that_lists_nothing_is_refused_where_certificates_are_worked_on(
        tmp_path: Path, text: str) -> None:
    """An emptied domains file would stop every renewal in silence (`run --quiet` prints
    nothing when nothing is due): run, deploy, check and monitor refuse it, naming it;
    commands that do not work on its certificates (status, account) still read the job."""
    from certfleet.config import sources

    domains = tmp_path / "domains.txt"
    domains.write_text(text)
    domains.chmod(0o600)
    options = {"domains": str(domains), "state_dir": str(tmp_path / "state")}
    with pytest.raises(ConfigError) as exc:
        sources.job_from(options, {}, need_domains=True)
    assert str(exc.value) == f"{domains}: lists no certificate (every line blank or a " \
        "comment): nothing would ever be renewed"
    assert sources.job_from(options, {}, need_domains=False).certs == ()
    assert sources.job_from(options, {}, need_domains=True, with_certs=False).certs == ()
    domains.write_text(text + "a.example\n")
    assert [s.name for s in sources.job_from(options, {}, need_domains=True).certs] == \
        ["a.example"]
