"""Where a certificate's four files go at a target. Touches nothing.

By default each certificate gets a directory of its own, named after it, holding the four
files under the names certbot, lego's ``--pem`` and the seed's acme-client setup use::

    TARGET_DIR/www.example.com/{cert,chain,fullchain,privkey}.pem

so two certificates may share a target directory (the seed's domains file sends both of its
certificates to ``/some/where/Certs``) and neither one's paths depend on the other lines of
the domains file. A target directory that is already named after the certificate
(``web1:/etc/nginx/certs/www.example.com``) is used as that directory: the same paths as
above. A further key type of the same certificate (``NAME+rsa2048``) puts its files beside
the first type's, the type before the extension (``fullchain.rsa2048.pem``).

A host with ``files = {...}`` names the files itself: they go straight into the target
directory, ``{name}`` replaced by the certificate's name, and a file two certificates would
both write is a configuration error (``config/job.py`` checks).
"""

from __future__ import annotations

from .names import storage_name
from .protocol.frozen import frozen
from .spec import PEM_NAMES, HostSettings, Target


@frozen
class Placement:
    """A certificate's files at one target: the directory and each PEM's file name there."""

    directory: str                     # absolute, on the target's host
    files: tuple[tuple[str, str], ...]  # (PEM name, file name in ``directory``)
    own_directory: bool                # ``directory`` is certfleet's to create if missing

    def path(self, pem: str) -> str:
        return f"{self.directory}/{dict(self.files)[pem]}"

    def describe(self) -> str:
        """The paths in brace form: ``/dir/www.example.com/{cert,chain,...}.pem``."""
        names = [name for _, name in self.files]
        stems = [n.removesuffix(".pem") for n in names]
        if all(n.endswith(".pem") for n in names):
            return f"{self.directory}/{{{','.join(stems)}}}.pem"
        return f"{self.directory}/{{{','.join(names)}}}"


def split_name(cert: str) -> tuple[str, str | None]:
    """``NAME+rsa2048`` to (``NAME``, ``rsa2048``); a plain name has no variant."""
    base, plus, variant = cert.partition("+")
    return base, variant if plus else None


def _with_variant(file_name: str, variant: str | None) -> str:
    if variant is None:
        return file_name
    stem, dot, ext = file_name.rpartition(".")
    return f"{stem}.{variant}.{ext}" if dot else f"{file_name}.{variant}"


def placement(target: Target, settings: HostSettings, cert: str) -> Placement:
    """Where certificate ``cert`` (its store name, maybe ``NAME+TYPE``) goes at ``target``."""
    base, variant = split_name(cert)
    folder = storage_name(base)
    if settings.files:
        files = []
        for pem in PEM_NAMES:
            template = settings.files.get(pem, pem)
            name = (template.replace("{name}", storage_name(cert)) if "{name}" in template
                    else _with_variant(template, variant))
            files.append((pem, name))
        return Placement(target.path, tuple(files), own_directory=False)
    names = tuple((pem, _with_variant(pem, variant)) for pem in PEM_NAMES)
    if target.path.rpartition("/")[2] == folder:
        return Placement(target.path, names, own_directory=False)
    return Placement(f"{target.path.rstrip('/')}/{folder}", names, own_directory=True)
