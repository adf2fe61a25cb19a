"""Every value check of certfleet.toml, fed a bad value: the whole message, ``file:line:
reason``, exactly. Real files on disk (the TOML, the domains file, secret files).

``CASES`` holds one row per place in ``src/certfleet/config/`` that refuses a value of
certfleet.toml, each named by that place (``module.function``); the checks of the domains
file's lines are in test_config.py (``BAD_LINES`` and the tests after it), named in
``ELSEWHERE``. ``test_every_check_has_a_case`` reads the config modules and fails when a
function that refuses values has fewer rows here than refusals (or is named nowhere), so a
new check cannot arrive without its test.
"""

from __future__ import annotations

import ast
import os
from collections import Counter
from pathlib import Path

import pytest

from certfleet.config import ConfigErrors, load_job, sources
from certfleet.config.domains import MAX_FILE, parse_target
from certfleet.errors import ConfigError

from . import test_structure

CONFIG_DIR = Path(__file__).resolve().parents[2] / "src" / "certfleet" / "config"
DOMAINS = "www.example.com\nwww.example.net www2.example.net\n"
PRESETS = ("letsencrypt, letsencrypt-staging, google, google-staging, zerossl, sslcom-rsa, "
           "sslcom-ecc, actalis")
RFC2136 = ("certfleet.toml:1: [dns] rfc2136 needs server, tsig_key_name and a TSIG secret "
           "(tsig_secret_file or CERTFLEET_TSIG_SECRET)")
EAB_TOGETHER = "certfleet.toml:1: [ca] eab_kid and eab_hmac_key go together"
LONG_NAME = "a" * 201

# (the check, certfleet.toml, every problem reported, in order). "certfleet.toml" and the
# secret files' names stand for their full paths.
CASES: list[tuple[str, str, list[str]]] = [
    # -- tomlfile: types, tables, unknown keys, paths --------------------------------------
    ("tomlfile.get", "concurrency = '4'\n",
     ["certfleet.toml:1: concurrency must be an integer, not a string"]),
    ("tomlfile.table", "hosts = 1\n",
     ["certfleet.toml:1: hosts must be a table, not an integer"]),
    ("tomlfile.table", "[hosts]\nuser = 'deploy'\n",
     ["certfleet.toml:2: user must be a table [hosts.\"user\"], not a string"]),
    ("tomlfile.finish", "[metrics]\ncolour = 1\n",
     ["certfleet.toml:2: unknown option 'colour' in [metrics]"]),
    ("tomlfile.checked", "renew_fraction = 1.5\n",
     ["certfleet.toml:1: renew_fraction must be between 0 and 1 (exclusive), not 1.5"]),
    ("tomlfile.resolve_path", "state_dir = ''\n",
     ["certfleet.toml:1: '' is not a usable path"]),
    ("tomlfile.resolve_path", "\n[ssh]\nknown_hosts = '~nosuchuser-cf/known_hosts'\n",
     ["certfleet.toml:3: cannot expand '~' in '~nosuchuser-cf/known_hosts': no home "
      "directory"]),
    # -- job: the file itself, cross-checks, the domains file --------------------------------
    ("job._load_toml", "a = [\n", ["certfleet.toml:2: Invalid value at the end of the file"]),
    ("job._load_toml", "a = 1\na = 2\n",
     ["certfleet.toml:2: Cannot overwrite a value (column 6)"]),
    ("job._cross_check", "[challenge]\nwebroot = '/w'\nhttp_listen = '127.0.0.1:80'\n",
     ["certfleet.toml:3: give webroot or http_listen, not both"]),
    ("job._cross_check", "[challenge]\nmode = 'webroot'\n",
     ["certfleet.toml:2: mode = \"webroot\" needs webroot"]),
    ("job._cross_check", "[challenge]\n\nmode = 'listen'\n",
     ["certfleet.toml:3: mode = \"listen\" needs http_listen"]),
    ("job._cross_check", "[ca]\ndirectory = 'http://ca.example/dir'\n",
     ["certfleet.toml:2: a plain http:// directory needs allow_http = true "
      "(--insecure-http; for test servers only)"]),
    ("job._cross_check", "[ca]\nfallback = ['http://ca.example/dir']\n",
     ["certfleet.toml:2: fallback http://ca.example/dir: a plain http:// directory needs "
      "allow_http = true (for test servers only)"]),
    ("job._cross_check", "[ca]\nca_bundle = 'nope.pem'\n",
     ["certfleet.toml:2: ca_bundle {conf}/nope.pem: no such file"]),
    ("job._plain_http_cas", "[defaults]\nca = 'http://ca.example/dir'\n",
     ["certfleet.toml:1: http://ca.example/dir: a plain http:// directory needs allow_http "
      "= true (for test servers only)"]),
    ("job._plain_http_cas",
     "# two\n[certs.\"www.example.com\"]\nfallback = ['http://ca.example/dir']\n",
     ["certfleet.toml:2: http://ca.example/dir: a plain http:// directory needs allow_http "
      "= true (for test servers only)"]),
    ("job._domains", "domains = 'nope.txt'\n",
     ["certfleet.toml:1: cannot read domains file {conf}/nope.txt: no such file"]),
    ("job._domains", "domains = 'sub'\n",
     ["certfleet.toml:1: cannot read domains file {conf}/sub: not a regular file"]),
    ("job._domains", "[certs.\"nope.example.com\"]\n",
     ["certfleet.toml:1: [certs.\"nope.example.com\"]: no such certificate in the domains "
      "file"]),
    ("job._domains", "[certs.\"www2.example.net\"]\n",
     ["certfleet.toml:1: [certs.\"www2.example.net\"]: www2.example.net is an alternative "
      "name (line 2); sections are keyed by a certificate's first name"]),
    ("job.load_job", "[hosts.default]\nfiles = { 'fullchain.pem' = 'site.crt' }\n",
     ["domains.txt:2: /srv/certs: /srv/certs/cert.pem is also written for www.example.com "
      "(domains.txt:1); put {{name}} in the files = {{...}} of host default, or drop files "
      "to give each certificate its own directory"]),
    # -- sections: secrets, [dns], [hosts], key types, [certs], [ca], [notify] ---------------
    ("sections.secret", "[ca]\neab_kid = 'k'\neab_hmac_key = 'c2VjcmV0'\n"
     "eab_hmac_key_file = 'secret'\n",
     ["certfleet.toml:3: give eab_hmac_key_file or eab_hmac_key, not both (the value is not "
      "shown)"]),
    ("sections.read_secret", "[ca]\neab_kid = 'k'\neab_hmac_key_file = 'nope'\n",
     ["certfleet.toml:3: {conf}/nope: no such file", EAB_TOGETHER]),
    ("sections.read_secret", "[ca]\neab_kid = 'k'\neab_hmac_key_file = 'open-secret'\n",
     ["certfleet.toml:3: {conf}/open-secret: a secret readable by group or others (mode "
      "644); chmod 600 it", EAB_TOGETHER]),
    ("sections.read_secret", "[dns]\nserver = '192.0.2.53'\ntsig_key_name = 'k'\n"
     "tsig_secret_file = 'binary-secret'\n",
     ["certfleet.toml:4: {conf}/binary-secret: not text", RFC2136]),
    ("sections.refused", "[hosts.default]\nidentity = 'open-secret'\n",
     ["certfleet.toml:2: {conf}/open-secret: a secret readable by group or others (mode "
      "644); chmod 600 it"]),
    ("sections.dns", "[dns]\nserver = '192.0.2.53'\n", [RFC2136]),
    ("sections.dns", "[dns]\nmethod = 'hook'\n",
     ["certfleet.toml:1: [dns] method = \"hook\" needs hook = [argv]"]),
    ("sections.hosts", "[hosts.web1]\nport = 22\n[hosts.WEB1]\nport = 23\n",
     ["certfleet.toml:1: [hosts] names one host twice (host names are the same in any "
      "case)"]),
    ("sections._key_types", "[defaults]\nkey_type = []\n",
     ["certfleet.toml:2: key_type must be a key type or a non-empty list of them"]),
    ("sections._key_types", "[defaults]\nkey_type = ['ec256', 'P256']\n",
     ["certfleet.toml:2: key_type lists a key type twice"]),
    ("sections.certs", "[certs.\"www.example.com\"]\n[certs.\"WWW.EXAMPLE.COM.\"]\n",
     ["certfleet.toml:2: [certs.\"www.example.com\"] given twice"]),
    ("sections.ca", "[ca]\neab_kid = 'k'\n", [EAB_TOGETHER]),
    ("sections.notify", "[notify]\nmail = 'smtp'\n",
     ["certfleet.toml:2: mail needs mail_to = [addresses]"]),
    ("sections.notify", "[notify]\nmail = 'smtp'\nmail_to = ['ops@example.com']\n"
     "smtp_user = 'u'\n",
     ["certfleet.toml:4: smtp_user needs smtp_password_file (or CERTFLEET_SMTP_PASSWORD)"]),
    # -- values: one row per refusal ------------------------------------------------------------
    ("values.check_user", "[hosts.default]\nuser = ''\n", ["certfleet.toml:2: empty user"]),
    ("values.check_user", "[hosts.default]\nuser = '-oProxyCommand=x'\n",
     ["certfleet.toml:2: user must not start with '-'"]),
    ("values.check_user", "[hosts.default]\nuser = 'a;b'\n",
     ["certfleet.toml:2: shell metacharacter ';' in user"]),
    ("values.check_user", "[hosts.default]\nuser = '" + "u" * 33 + "'\n",
     ["certfleet.toml:2: user longer than 32 characters"]),
    ("values.check_user", "[hosts.default]\nowner = 'ro ot'\n",
     ["certfleet.toml:2: owner must be letters, digits, '_', '.' and '-', starting with a "
      "letter or '_'"]),
    ("values.check_account", "[hosts.default]\ngroup = 4294967296\n",
     ["certfleet.toml:2: group 4294967296 is not a user or group ID"]),
    ("values.check_account", "[hosts.default]\nowner = -1\n",
     ["certfleet.toml:2: owner -1 is not a user or group ID"]),
    ("values.paths", "[ssh]\nconfig = ['ssh_config', 1]\n",
     ["certfleet.toml:2: config must be a list of paths"]),
    ("values.int_range", "concurrency = 0\n",
     ["certfleet.toml:1: concurrency must be an integer from 1 to 10000, not 0"]),
    ("values.seconds", "[ca]\nmax_clock_skew = nan\n",
     ["certfleet.toml:2: max_clock_skew must be a number of seconds from 0 to 86400, not "
      "nan"]),
    ("values.per_second", "[ca]\nrequest_rate = 0.05\n",
     ["certfleet.toml:2: request_rate must be a number of requests per second from 0.1 to "
      "10000, not 0.05"]),
    ("values.fraction", "renew_fraction = 0\n",
     ["certfleet.toml:1: renew_fraction must be between 0 and 1 (exclusive), not 0"]),
    ("values.fraction", "[notify]\nexpiry_alarm = 2\n",
     ["certfleet.toml:2: expiry_alarm must be between 0 and 1 (exclusive), not 2"]),
    ("values.challenge", "[defaults]\nchallenge = 'http-02'\n",
     ["certfleet.toml:2: unknown challenge 'http-02'; choose one of http-01, dns-01, "
      "tls-alpn-01"]),
    ("values.directory", "[ca]\ndirectory = 'letsencrypt-nope'\n",
     [f"certfleet.toml:2: directory 'letsencrypt-nope' is not an https:// URL or one of "
      f"{PRESETS}"]),
    ("values.dns_method", "[dns]\nmethod = 'pigeon'\n",
     ["certfleet.toml:2: method 'pigeon': use rfc2136 or hook", RFC2136]),
    ("values.dns_server", "[dns]\nnameservers = ['192.0.2.1', 1]\n",
     ["certfleet.toml:2: 1 is not IP[:PORT]", RFC2136]),
    ("values.dns_server", "[dns]\nserver = 'ns.example.com'\ntsig_key_name = 'k'\n"
     "tsig_secret = 'c2VjcmV0'\n",
     ["certfleet.toml:2: DNS server 'ns.example.com': not an IP address (give the address, "
      "not a host name)", RFC2136]),
    ("values.argv", "[notify]\nhook = ['notify', '']\n",
     ["certfleet.toml:2: hook must be a non-empty list of strings (argv, no shell)"]),
    ("values.argv", "[notify]\nsendmail = []\n",
     ["certfleet.toml:2: sendmail must be a non-empty list of strings (argv, no shell)"]),
    ("values.tsig_algorithm", "[dns]\nserver = '192.0.2.53'\ntsig_key_name = 'k'\n"
     "tsig_secret = 'c2VjcmV0'\ntsig_algorithm = 'md5'\n",
     ["certfleet.toml:5: tsig_algorithm 'md5': use one of hmac-sha256, hmac-sha384, "
      "hmac-sha512, hmac-sha224, hmac-sha1"]),
    ("values.chain_name", "[defaults]\npreferred_chain = ''\n",
     ["certfleet.toml:2: preferred_chain '' is not a common name"]),
    ("values.eab_kid", "[ca]\neab_kid = ''\neab_hmac_key = 'c2VjcmV0'\n",
     ["certfleet.toml:2: eab_kid '' is not a key identifier", EAB_TOGETHER]),
    ("values.eab_hmac_key", "[ca]\neab_kid = 'k'\neab_hmac_key = 'not base64!'\n",
     ["certfleet.toml:3: eab_hmac_key is not base64url; the value is not shown",
      EAB_TOGETHER]),
    ("values.eab_alg", "[ca]\neab_kid = 'k'\neab_hmac_key = 'c2VjcmV0'\neab_alg = 'HS1'\n",
     ["certfleet.toml:4: eab_alg 'HS1': use HS256, HS384 or HS512"]),
    ("values.fallback", "[ca]\nfallback = ['letsencrypt', 1]\n",
     ["certfleet.toml:2: fallback must list directory URLs or preset names"]),
    ("values.listen", "[notify]\nsmtp_server = 'mail'\n",
     ["certfleet.toml:2: smtp_server 'mail': expected HOST:PORT"]),
    ("values.profile", "[defaults]\nprofile = '-x'\n",
     ["certfleet.toml:2: profile '-x': letters, digits, '.', '_', '-' only"]),
    ("values.events", "[notify]\nhook = ['x']\nhook_events = ['failure', 'boredom']\n",
     ["certfleet.toml:3: unknown event 'boredom'; the events are failure, renewal, "
      "deploy_failure, expiring"]),
    ("values.mail_method", "[notify]\nmail = 'pigeon'\nmail_to = ['ops@example.com']\n",
     ["certfleet.toml:2: mail 'pigeon': use \"sendmail\" or \"smtp\""]),
    ("values.printable", "[notify]\nsmtp_user = ''\n",
     ["certfleet.toml:2: smtp_user '' is not a usable value"]),
    ("values.http_mode", "[challenge]\nmode = 'carrier'\n",
     ["certfleet.toml:2: mode 'carrier': use one of webroot, listen, serve, stateless"]),
    ("values.lb_addresses", "[lb]\naddresses = ['lb1.example.com', 'lb 2']\n",
     ["certfleet.toml:2: addresses: 'lb 2' is not HOST or HOST:PORT"]),
    ("values.contact", "[ca]\ncontact = ['not an address']\n",
     ["certfleet.toml:2: contact 'not an address' is not an e-mail address"]),
    ("values.contact", "[notify]\nmail_from = 'nobody'\n",
     ["certfleet.toml:2: mail_from 'nobody' is not an e-mail address"]),
    ("values.check_reload", "[hosts.default]\nreload = 'systemctl reload nginx'\n",
     ["certfleet.toml:2: reload must be a list (argv), not a shell string"]),
    ("values.check_reload", "[hosts.default]\nreload = ['a', 1]\n",
     ["certfleet.toml:2: reload must be a list of printable strings"]),
    ("values.check_reload", "[hosts.default]\nreload = ['']\n",
     ["certfleet.toml:2: reload: the program name is empty"]),
    ("values.check_mode", "[hosts.default]\nmode = '0999'\n",
     ["certfleet.toml:2: mode '0999' is not an octal mode like \"0644\""]),
    ("values.check_mode", "[hosts.default]\nmode = 644\n",
     ["certfleet.toml:2: mode 644 is not octal: write \"0644\" or 0o644"]),
    ("values.check_mode", "[hosts.default]\ndir_mode = '4755'\n",
     ["certfleet.toml:2: dir_mode 0o4755: only permission bits (up to 0o777)"]),
    ("values.check_mode", "[hosts.default]\nkey_mode = '0604'\n",
     ["certfleet.toml:2: key_mode 0o604 gives others too much access"]),
    ("values._file_name", "[hosts.default]\nfiles = { 'cert.pem' = 1 }\n",
     ["certfleet.toml:2: files: cert.pem must map to a file name"]),
    ("values._file_name", "[hosts.default]\nfiles = { 'cert.pem' = 'a b' }\n",
     ["certfleet.toml:2: files: cert.pem = 'a b' has a space or control character"]),
    ("values._file_name", f"[hosts.default]\nfiles = {{ 'cert.pem' = '{LONG_NAME}' }}\n",
     [f"certfleet.toml:2: files: cert.pem = '{LONG_NAME}' is too long"]),
    ("values.check_files", "[hosts.default]\nfiles = { 'key.pem' = 'x' }\n",
     ["certfleet.toml:2: files: unknown file 'key.pem'; the keys are cert.pem, chain.pem, "
      "fullchain.pem, privkey.pem"]),
    ("values.check_files", "[hosts.default]\nfiles = { 'cert.pem' = 'x', 'chain.pem' = 'x' }\n",
     ["certfleet.toml:2: files: cert.pem and chain.pem would both be written to 'x'"]),
    ("values.check_probe", "[hosts.default]\nprobe = { colour = 1 }\n",
     ["certfleet.toml:2: probe: unknown option 'colour'; use port, address"]),
    ("values.check_probe", "[hosts.default]\nprobe = { port = true }\n",
     ["certfleet.toml:2: probe: port must be an integer between 1 and 65535"]),
    ("values.check_probe", "[hosts.default]\nprobe = { address = 'a b' }\n",
     ["certfleet.toml:2: probe: address must be an IP address or a host name"]),
]

# Checks whose cases are elsewhere (the domains file's lines, reading the file itself).
ELSEWHERE = {
    "tomlfile.local_name": "test_day_one.py::test_a_locale_that_cannot_spell_a_file_name_is_"
                           "one_line (a locale without UTF-8, in a child process)",
    "domains.parse_target": "test_config.py::test_malformed_line_names_file_line_and_fault",
    "domains.run": "test_config.py::test_file_size_cap",
    "domains._lines": "test_config.py::test_non_utf8_bytes_name_the_line",
    "domains._line": "test_config.py::test_malformed_line_names_file_line_and_fault",
    "domains._names": "test_config.py::test_duplicate_name_across_lines, "
                      "test_malformed_line_names_file_line_and_fault",
    "domains._targets": "test_config.py::test_malformed_line_names_file_line_and_fault",
    "values.check_host": "test_config.py::test_malformed_line_names_file_line_and_fault",
    "values.check_ipv6": "test_config.py::test_malformed_line_names_file_line_and_fault",
    "values.check_path": "test_config.py::test_malformed_line_names_file_line_and_fault, "
                         "test_check_path_refusals_the_line_screen_catches_first (here)",
    "job._load_toml": "here: CASES, test_an_oversized_or_untrusted_configuration_file",
    "job._apply_overrides": "test_config.py::test_bad_overrides_are_reported",
    "sources.job_from": "here: test_no_configuration_at_all",
    "problems.raise_if_any": "every case (it raises what the others collect)",
    "__init__.__getattr__": "not a value check (an unknown attribute of the package)",
    "store_section._backend": "test_store_config.py::test_bad_values_name_their_line",
    "store_section._holder": "test_store_config.py::test_bad_values_name_their_line",
    "store_section._key": "test_store_config.py::test_bad_values_name_their_line",
    "store_section.store": "test_store_config.py::test_bad_values_name_their_line, "
                           "test_postgresql_options_with_the_file_store_are_refused",
}


def _conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "domains.txt").write_text(DOMAINS.replace("\n", " | /srv/certs\n"))
    (conf / "sub").mkdir()
    for name, data, mode in (("secret", b"c2VjcmV0\n", 0o600),
                             ("open-secret", b"c2VjcmV0\n", 0o644),
                             ("binary-secret", b"\xff\xfe\n", 0o600)):
        (conf / name).write_bytes(data)
        (conf / name).chmod(mode)
    return conf


@pytest.mark.parametrize(("check", "toml", "expected"), CASES,
                         ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_a_bad_value_is_named_at_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          check: str, toml: str, expected: list[str]) -> None:
    monkeypatch.delenv("CERTFLEET_TSIG_SECRET", raising=False)
    monkeypatch.delenv("CERTFLEET_SMTP_PASSWORD", raising=False)
    conf = _conf(tmp_path)
    path = conf / "certfleet.toml"
    path.write_text(toml)
    domains = None if "domains =" in toml else conf / "domains.txt"
    with pytest.raises(ConfigErrors) as caught:
        load_job(path, domains_path=domains)
    shown = [p.replace(f"{conf}/", "") for p in caught.value.problems]
    assert shown == [e.replace("{conf}/", "").replace("{{", "{").replace("}}", "}")
                     for e in expected]


def test_an_oversized_or_untrusted_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "certfleet.toml"
    path.write_bytes(b"#" * (MAX_FILE + 1))
    with pytest.raises(ConfigErrors) as caught:
        load_job(path)
    assert caught.value.problems == [f"{path}: cannot read: file larger than 16 MiB"]
    path.write_text("concurrency = 2\n")
    path.chmod(0o664)
    with pytest.raises(ConfigErrors) as caught:
        load_job(path)
    assert caught.value.problems == [
        f"{path}: cannot read: writable by group or others (mode 664); chmod go-w it"]


def test_no_configuration_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "DEFAULT_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError) as caught:
        sources.job_from({}, {}, need_domains=True)
    assert str(caught.value) == (f"no configuration: pass --config FILE or --domains FILE "
                                 f"(or create {tmp_path / 'absent.toml'})")


@pytest.mark.parametrize(("path", "reason"), [
    ("/srv/a b", "space or control character in path"),
    ("/srv/a\x07b", "space or control character in path"),
    ("/srv/caf\u00e9\u200b", "invisible character in path"),
])
def test_check_path_refusals_the_line_screen_catches_first(path: str, reason: str) -> None:
    """A target path with a space, a control or an invisible character never reaches
    ``check_path`` from the domains file (a space splits the token, the line screen refuses
    the others with their column); the check stands behind them, for any other caller."""
    with pytest.raises(ConfigError, match=f"^{reason}$"):
        parse_target(path)


def _refusals() -> Counter[str]:
    """How many places each function of the config modules refuses a value at."""
    found: Counter[str] = Counter()
    for module in sorted(CONFIG_DIR.glob("*.py")):
        tree = test_structure.tree(module)
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                refuses = (isinstance(node, ast.Raise) and node.exc is not None) or (
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add" and "problems" in ast.unparse(node.func.value))
                if refuses:
                    found[f"{module.stem}.{function.name}"] += 1
    return found


def test_every_check_has_a_case() -> None:
    refusals = _refusals()
    rows = Counter(check for check, _, _ in CASES)
    # A nested check (int_range's, seconds' and per_second's ``convert``) is counted with
    # the function that makes it, and on its own under ``convert``: only the first counts.
    missing = {name: (count, rows[name]) for name, count in refusals.items()
               if name not in ELSEWHERE and rows[name] < count
               and not name.endswith(".convert")}
    assert not missing, f"refusals without a case (function: refusals, cases): {missing}"
    assert not set(rows) - set(refusals), "cases name a function that refuses nothing"
    assert set(refusals) >= set(ELSEWHERE), set(ELSEWHERE) - set(refusals)
    assert os.path.isdir(CONFIG_DIR)
