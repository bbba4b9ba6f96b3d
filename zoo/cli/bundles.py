"""`zoo bundle` (and verify, ls, keygen), `zoo publish` and `zoo pull`: shipping verified models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.options import AllOpt, JsonOpt, ListOpt, ManifestsOpt, NameOpt, folder_option, select
from zoo.cli.render import console, print_json, print_lines
from zoo.errors import EXIT_USAGE, ZooError

bundle_app = typer.Typer(
    help="Make a versioned, checksummed, optionally signed bundle of verified models; verify, list, keygen.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)

PlainHttpOpt = Annotated[
    bool,
    typer.Option(
        "--plain-http", help="Talk HTTP, not HTTPS, to the registry (automatic for 127.0.0.1/localhost)."
    ),
]
PublicKeyOpt = Annotated[
    Path | None,
    typer.Option("--public-key", help="PEM public key: also check the bundle's signature with it."),
]


@bundle_app.callback(invoke_without_command=True)
def bundle(
    ctx: typer.Context,
    name: NameOpt = None,
    all_: AllOpt = False,
    list_file: ListOpt = None,
    manifests: ManifestsOpt = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Bundle version X.Y.Z (also the OCI tag when published).")
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Where `zoo convert`/`zoo verify` wrote (default zoo-out)."),
    ] = None,
    dist: Annotated[Path, typer.Option("--dist", help="Folder the bundle and its .tar.gz go to.")] = Path(
        "dist"
    ),
    bundle_name: Annotated[
        str | None,
        typer.Option("--bundle-name", help="Bundle name (default: the model's name, or 'zoo' for several)."),
    ] = None,
    name_prefix: Annotated[
        str, typer.Option("--name-prefix", help="Prefix for the bundle name, e.g. 'acme-'.")
    ] = "",
    precisions: Annotated[
        list[str] | None,
        typer.Option(
            "--precisions",
            help="Artifacts to include: comma-separated onnx,FP32,FP16,INT8 (default: all verified).",
        ),
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help="PEM EC private key: sign with OpenSSF model-signing (password in ZOO_SIGN_PASSWORD).",
        ),
    ] = None,
    allow_reference_weights: Annotated[
        bool,
        typer.Option(
            "--allow-reference-weights", help="Also bundle models made from reference weights (marked)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bundle verified models: `zoo bundle --name NAME --version 1.0.0 [--sign-key KEY]`; sub-commands below."""
    if ctx.invoked_subcommand is not None:
        if name or all_ or list_file or version:
            raise ZooError(
                f"zoo bundle {ctx.invoked_subcommand}: model selection and --version belong to `zoo bundle` itself, "
                f"not before a sub-command.",
                EXIT_USAGE,
            )
        return
    from zoo.bundle import build_bundle
    from zoo.layout import default_output_dir

    if version is None:
        raise ZooError("zoo bundle: --version X.Y.Z is required (the bundle's version).", EXIT_USAGE)
    folder_option(output_dir or default_output_dir(), "--output-dir")
    folder_option(dist, "--dist")
    chosen = select(name, all_, list_file, manifests)
    result = build_bundle(
        chosen,
        output_dir or default_output_dir(),
        dist,
        version,
        bundle_name=bundle_name,
        name_prefix=name_prefix,
        precisions=precisions,
        sign_key=sign_key,
        allow_reference_weights=allow_reference_weights,
    )
    if as_json:
        print_json(result.as_dict())
        return
    signed = "no"
    if result.signed:
        signed = "yes (previous signature kept: same content, same key)" if result.signature_reused else "yes"
    print_lines(
        [
            ("bundle", f"{result.name} {result.version}"),
            ("models", ", ".join(result.models)),
            ("folder", result.directory),
            ("tarball", f"{result.tarball} ({result.tarball_size:,} bytes)"),
            ("sha256", result.tarball_sha256),
            ("created", f"{result.created} (from {result.created_from})"),
            ("signed", signed),
        ]
    )
    if result.reference_weights:
        typer.echo("note: made from REFERENCE WEIGHTS (marked in bundle.json and the model cards)")
    if result.non_commercial:
        typer.echo(f"note: non-commercial licence: {', '.join(result.non_commercial)} (see the model cards)")


@bundle_app.command("verify")
def bundle_verify(
    path: Annotated[Path, typer.Argument(help="Bundle folder or .tar.gz.", show_default=False)],
    public_key: PublicKeyOpt = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="Fail when the bundle is not signed.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-check every file's size and sha256, bundle.json, and (with --public-key) the signature."""
    from zoo.bundle import verify_bundle

    result = verify_bundle(path, public_key=public_key, require_signature=require_signature)
    if as_json:
        print_json(result.as_dict())
        return
    if result.signature_checked:
        signature = f"valid ({public_key})"
    elif result.signed:
        signature = "present, NOT checked (give --public-key)"
    else:
        signature = "unsigned"
    print_lines(
        [
            ("bundle", f"{result.name} {result.version} ({result.created})"),
            ("models", ", ".join(result.models)),
            ("files", f"{result.files} checked (size and sha256)"),
            ("signature", signature),
        ]
    )
    if result.reference_weights:
        typer.echo("note: made from REFERENCE WEIGHTS")
    if result.non_commercial:
        typer.echo(f"note: non-commercial licence: {', '.join(result.non_commercial)}")
    typer.echo("OK")


@bundle_app.command("ls")
def bundle_ls(
    target: Annotated[
        str, typer.Argument(help="Folder, file:///path or oci://host:port/repository.", show_default=False)
    ],
    plain_http: PlainHttpOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List the bundle versions a folder or OCI repository holds."""
    from zoo.bundle import list_versions

    rows = list_versions(target, plain_http=plain_http)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no zoo bundles in {target}")
        return
    from rich.table import Table

    table = Table()
    for column in ("bundle", "version", "tag", "created", "models", "signed", "size"):
        table.add_column(column, no_wrap=column in ("bundle", "version"))
    for row in rows:
        table.add_row(
            row["name"] or "?",
            row["version"] or "?",
            row.get("tag") or "-",
            row.get("created") or "-",
            ", ".join(row["models"]),
            "yes" if row["signed"] else "no",
            f"{row['size']:,}" if row.get("size") else "-",
        )
    console().print(table)


@bundle_app.command("keygen")
def bundle_keygen(
    path: Annotated[Path, typer.Argument(help="Private key file to write; the public key goes to PATH.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
) -> None:
    """Make an elliptic-curve (P-256) key pair for signing bundles offline."""
    from zoo.bundle import keygen

    private, public = keygen(path, force=force)
    typer.echo(
        f"private key  {private} (keep it secret)\npublic key   {public} (give it to whoever verifies)"
    )


def publish(
    path: Annotated[
        Path, typer.Argument(help="Bundle folder or .tar.gz made by `zoo bundle`.", show_default=False)
    ],
    to: Annotated[
        str, typer.Option("--to", help="Folder, file:///path or oci://host:port/repository[:tag].")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a version that is already published.")
    ] = False,
    public_key: PublicKeyOpt = None,
    plain_http: PlainHttpOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify a bundle, then publish it to a folder or an OCI registry (one artifact per version)."""
    from zoo.bundle import publish as publish_bundle

    result = publish_bundle(path, to, force=force, plain_http=plain_http, public_key=public_key)
    if as_json:
        print_json(result.as_dict())
        return
    pairs = [
        ("published", f"{result.name} {result.version}" + (" (replaced)" if result.replaced else "")),
        ("to", result.target),
        ("sha256", f"{result.sha256} ({result.size:,} bytes)"),
        ("models", ", ".join(result.models)),
        ("signed", "yes" if result.signed else "no"),
    ]
    if result.digest:
        pairs.append(("manifest", result.digest))
    print_lines(pairs)


def pull(
    ref: Annotated[
        str,
        typer.Argument(
            help="oci://host:port/repository:tag, a folder target, or a bundle .tar.gz.", show_default=False
        ),
    ],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where the bundle goes.")] = Path(
        "."
    ),
    version: Annotated[
        str | None, typer.Option("--version", help="Version to pull (when REF names none).")
    ] = None,
    bundle_name: Annotated[
        str | None, typer.Option("--bundle", help="Bundle name, when a folder target holds several.")
    ] = None,
    public_key: PublicKeyOpt = None,
    require_signature: Annotated[
        bool, typer.Option("--require-signature", help="Fail when the bundle is not signed.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing copy in the output folder.")
    ] = False,
    plain_http: PlainHttpOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a published bundle, verify it (sizes, sums, signature), keep the folder and its tarball."""
    from zoo.bundle import pull as pull_bundle

    result = pull_bundle(
        ref,
        output_dir,
        version=version,
        bundle_name=bundle_name,
        public_key=public_key,
        require_signature=require_signature,
        force=force,
        plain_http=plain_http,
    )
    if as_json:
        print_json(result.as_dict())
        return
    checked = result.verified
    signature = (
        "valid" if checked.signature_checked else ("present, not checked" if checked.signed else "unsigned")
    )
    print_lines(
        [
            ("pulled", f"{checked.name} {checked.version}"),
            ("from", result.source),
            ("folder", result.directory),
            ("tarball", result.tarball),
            ("verified", f"{checked.files} files, signature {signature}"),
        ]
    )
