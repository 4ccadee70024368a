"""``cadr-package``: make signing keys, sign bundles, pack bundles and the app into packages.

Runs on the maker's workstation. The private key never goes on a device.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cadr_convert.app_package import pack_app
from cadr_convert.package import bump_bundle, pack_bundle, resign_bundle
from cadr_convert.signing import SigningError, generate_keypair, load_private_key
from cadr_device.errors import BundleError
from cadr_device.manifest import SCHEMA_VERSION

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``cadr-package``."""
    parser = argparse.ArgumentParser(
        prog="cadr-package",
        description="Make Ed25519 signing keys, sign model bundles and pack them into signed "
        "update packages (.cadrpkg) for cadr-update.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    keygen = commands.add_parser("keygen", help="write a new Ed25519 key pair (PEM)")
    keygen.add_argument("private", type=Path, help="private key file to write (mode 0600)")
    keygen.add_argument("public", type=Path, help="public key file to write; install it in "
                        "the device's key directory as NAME.pub")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")

    pack = commands.add_parser("pack", help="pack and sign a bundle into NAME-VERSION.cadrpkg")
    pack.add_argument("bundle", type=Path, help="signed bundle directory")
    pack.add_argument("--key", type=Path, required=True, help="private key (PEM)")
    pack.add_argument("--out", type=Path, required=True, help="output directory")
    pack.add_argument("--min-app-version", default=None,
                      help="oldest cadr app that may install the package (default: the "
                      "bundle's min_app_version)")

    pack_app_command = commands.add_parser(
        "pack-app", help="pack and sign the app's offline wheelhouse into "
        "cadr-app-VERSION.cadrpkg")
    pack_app_command.add_argument("wheelhouse", type=Path,
                                  help="folder from python -m cadr_convert.wheelhouse")
    pack_app_command.add_argument("--key", type=Path, required=True, help="private key (PEM)")
    pack_app_command.add_argument("--out", type=Path, required=True, help="output directory")
    pack_app_command.add_argument("--target", default=None,
                                  help="the wheelhouse's target, such as "
                                  "cp311-manylinux_2_36_aarch64 (default: read from its "
                                  "requirements.txt)")
    pack_app_command.add_argument("--bundle-schema-min", type=int, default=SCHEMA_VERSION,
                                  help="oldest bundle schema_version the app reads "
                                  "(default: %(default)s)")
    pack_app_command.add_argument("--bundle-schema-max", type=int, default=SCHEMA_VERSION,
                                  help="newest bundle schema_version the app reads "
                                  "(default: %(default)s)")

    sign = commands.add_parser("sign", help="re-hash and re-sign a bundle's manifest after "
                               "editing it")
    sign.add_argument("bundle", type=Path, help="bundle directory, changed in place")
    sign.add_argument("--key", type=Path, required=True, help="private key (PEM)")
    sign.add_argument("--version", default=None, help="new bundle version MAJOR.MINOR.PATCH")

    bump = commands.add_parser("bump", help="copy a bundle with a new version and re-sign it")
    bump.add_argument("bundle", type=Path, help="bundle directory to copy")
    bump.add_argument("--version", required=True, help="new version MAJOR.MINOR.PATCH")
    bump.add_argument("--key", type=Path, required=True, help="private key (PEM)")
    bump.add_argument("--out", type=Path, default=None,
                      help="new bundle directory (default: NAME-VERSION beside the source)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``cadr-package`` and return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except (SigningError, BundleError) as e:
        logger.error("%s", e)
        return EXIT_FAILED
    return EXIT_OK


def _run(args: argparse.Namespace) -> None:
    if args.command == "keygen":
        kid = generate_keypair(args.private, args.public, force=args.force)
        logger.info("Wrote key %s: private %s, public %s", kid, args.private, args.public)
        return

    private_key = load_private_key(args.key)
    if args.command == "pack":
        package = pack_bundle(args.bundle, private_key, args.out, args.min_app_version)
        sys.stdout.write(f"{package}\n")
    elif args.command == "pack-app":
        package = pack_app(args.wheelhouse, private_key, args.out, target=args.target,
                           bundle_schema_min=args.bundle_schema_min,
                           bundle_schema_max=args.bundle_schema_max)
        sys.stdout.write(f"{package}\n")
    elif args.command == "sign":
        kid = resign_bundle(args.bundle, private_key, args.version)
        logger.info("Signed %s with key %s", args.bundle, kid)
    else:
        out = bump_bundle(args.bundle, args.version, private_key, args.out)
        sys.stdout.write(f"{out}\n")


if __name__ == "__main__":
    sys.exit(main())
