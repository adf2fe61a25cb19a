"""Where a certificate's files go at a target (the seed's shared directories included)."""

from __future__ import annotations

from certfleet.layout import placement
from certfleet.spec import HostSettings, Target

PEMS = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")


def test_a_shared_directory_gets_a_directory_per_certificate() -> None:
    target = Target("/some/where/Certs", "198.51.100.11")
    com = placement(target, HostSettings(), "www.example.com")
    net = placement(target, HostSettings(), "www.example.net")
    assert com.directory == "/some/where/Certs/www.example.com"
    assert com.own_directory
    assert net.directory == "/some/where/Certs/www.example.net"
    assert [name for _, name in com.files] == list(PEMS)
    assert com.describe() == "/some/where/Certs/www.example.com/{cert,chain,fullchain,privkey}.pem"


def test_a_directory_named_after_the_certificate_is_its_own() -> None:
    where = placement(Target("/etc/nginx/certs/www.example.com", "web1"), HostSettings(),
                      "www.example.com")
    assert where.directory == "/etc/nginx/certs/www.example.com"
    assert not where.own_directory
    shared = placement(Target("/etc/nginx/certs", "web1"), HostSettings(), "www.example.com")
    assert shared.path("fullchain.pem") == where.path("fullchain.pem")


def test_wildcards_and_further_key_types() -> None:
    where = placement(Target("/c"), HostSettings(), "*.example.com+rsa2048")
    assert where.directory == "/c/_wildcard.example.com"
    assert where.path("fullchain.pem") == "/c/_wildcard.example.com/fullchain.rsa2048.pem"


def test_files_setting_names_the_files_in_the_target_directory() -> None:
    settings = HostSettings(files={"fullchain.pem": "{name}.crt", "privkey.pem": "site.key"})
    where = placement(Target("/srv/tls", "h"), settings, "shop.example.net")
    assert where.directory == "/srv/tls"
    assert not where.own_directory
    assert dict(where.files) == {"cert.pem": "cert.pem", "chain.pem": "chain.pem",
                                 "fullchain.pem": "shop.example.net.crt",
                                 "privkey.pem": "site.key"}
    variant = placement(Target("/srv/tls", "h"), settings, "shop.example.net+rsa2048")
    assert variant.path("privkey.pem") == "/srv/tls/site.rsa2048.key"
    assert variant.path("fullchain.pem") == "/srv/tls/shop.example.net+rsa2048.crt"


def test_own_directory_is_a_plain_boolean() -> None:
    assert placement(Target("/c"), HostSettings(), "a.example").own_directory is True
    assert placement(Target("/c/a.example"), HostSettings(), "a.example").own_directory is False
    files = HostSettings(files={"cert.pem": "x.pem"})
    assert placement(Target("/c"), files, "a.example").own_directory is False


def test_the_root_directory_as_a_target() -> None:
    where = placement(Target("/"), HostSettings(), "a.example")
    assert where.directory == "/a.example"
    assert where.path("cert.pem") == "/a.example/cert.pem"


def test_a_further_key_type_goes_before_the_last_extension_only() -> None:
    settings = HostSettings(files={"fullchain.pem": "site.full.pem", "privkey.pem": "sitekey",
                                   "cert.pem": "{name}.crt"})
    where = placement(Target("/srv"), settings, "a.example+rsa2048")
    assert dict(where.files) == {"cert.pem": "a.example+rsa2048.crt",
                                 "chain.pem": "chain.rsa2048.pem",
                                 "fullchain.pem": "site.full.rsa2048.pem",
                                 "privkey.pem": "sitekey.rsa2048"}
    assert where.describe() == ("/srv/{a.example+rsa2048.crt,chain.rsa2048.pem,"
                                "site.full.rsa2048.pem,sitekey.rsa2048}")


def test_a_target_directory_ending_in_any_letter_is_kept_whole() -> None:
    assert placement(Target("/srv/X"), HostSettings(), "a.example").directory == \
        "/srv/X/a.example"
