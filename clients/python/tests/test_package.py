"""The SDK installs and imports alone: httpx and pydantic, never a server package."""

import subprocess
import sys
from importlib import metadata, resources

from packaging.requirements import Requirement


def test_the_distribution_declares_only_httpx_and_pydantic():
    requirements = [Requirement(text) for text in metadata.requires("pixtools-client") or []]
    assert sorted(requirement.name for requirement in requirements if requirement.marker is None) == [
        "httpx",
        "pydantic",
    ]


def test_importing_the_sdk_imports_no_server_module():
    probe = (
        "import sys, pixtools_client; "
        "print('\\n'.join(m for m in sys.modules if m.startswith('pixtools_') and not m.startswith('pixtools_client')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
    heavy = (
        "import sys, pixtools_client; print(sorted({'fastapi', 'sqlalchemy', 'aio_pika', 'PIL'} & set(sys.modules)))"
    )
    assert (
        subprocess.run([sys.executable, "-c", heavy], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_the_package_is_typed():
    assert resources.files("pixtools_client").joinpath("py.typed").is_file()
