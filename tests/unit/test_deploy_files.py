"""The one Dockerfile and what deploys it: compose and k8s may only ask for what the Dockerfile builds."""

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICE_STAGE = re.compile(r"service-(?P<service>[a-z0-9-]+)")


@dataclass
class Stage:
    """One FROM block of the Dockerfile: its base, and the instructions the checks read."""

    name: str
    base: str
    expose: list[int] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


@dataclass
class Dockerfile:
    """The stages of the Dockerfile and every build argument it declares, with its default."""

    stages: dict[str, Stage]
    args: dict[str, str]

    @property
    def services(self) -> dict[str, Stage]:
        """The SERVICE values it builds: one service-<name> stage each."""
        return {m["service"]: stage for name, stage in self.stages.items() if (m := SERVICE_STAGE.fullmatch(name))}

    @property
    def targets(self) -> set[str]:
        """The stages that finish an image: those built on the chosen service's stage."""
        return {name for name, stage in self.stages.items() if stage.base == "service-${SERVICE}"}


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(keyword, rest) of each instruction, continuation lines joined and comments dropped."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            yield keyword.upper(), rest.strip()
        logical = ""


def parse_dockerfile(path: Path) -> Dockerfile:
    """Read the stages, EXPOSE, CMD and ARG names; enough to check references, not to build."""
    stages: dict[str, Stage] = {}
    args: dict[str, str] = {}
    stage: Stage | None = None
    for keyword, rest in _instructions(path.read_text()):
        if keyword == "FROM":
            words = rest.split()
            stage = Stage(name=words[2] if len(words) == 3 and words[1].upper() == "AS" else "", base=words[0])
            stages[stage.name] = stage
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = args.get(name) or default
        elif keyword == "EXPOSE" and stage:
            stage.expose += [int(port.split("/")[0]) for port in rest.split()]
        elif keyword == "CMD" and stage:
            stage.command = json.loads(rest)
    return Dockerfile(stages=stages, args=args)


def project(service: str) -> dict[str, Any]:
    """The [project] table of services/<service>/pyproject.toml."""
    return tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())["project"]


def needs_torch(service: str) -> bool:
    """Whether the service's package depends on torch, the rule the Dockerfile follows."""
    names = (re.match(r"[A-Za-z0-9._-]+", dependency) for dependency in project(service)["dependencies"])
    return any(name and name.group().lower() == "torch" for name in names)


def merged(base: Any, override: Any) -> Any:
    """Compose's merge of an override file: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return base | {key: merged(base[key], value) if key in base else value for key, value in override.items()}
    return override


def compose_builds(*files: str) -> dict[str, dict[str, Any]]:
    """Service name -> the effective build section, for every service the compose files build."""
    configs = [yaml.safe_load((ROOT / file).read_text()) for file in files]
    services = configs[0]["services"]
    for config in configs[1:]:
        services = merged(services, config["services"])
    return {name: service for name, service in services.items() if "build" in service}


def k8s_documents() -> list[dict[str, Any]]:
    """Every manifest that kustomization.yaml deploys, plus the kustomization itself."""
    folder = ROOT / "deploy" / "k8s"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    documents = [kustomization]
    for resource in kustomization["resources"]:
        documents += [doc for doc in yaml.safe_load_all((folder / resource).read_text()) if doc]
    return documents


def k8s_containers() -> Iterator[dict[str, Any]]:
    """Every container of every Deployment and Job."""
    for doc in k8s_documents():
        if doc.get("kind") in {"Deployment", "Job"}:
            yield from doc["spec"]["template"]["spec"]["containers"]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(ROOT / "Dockerfile")


# Third-party images the manifests run besides PixTools' own, each pinned to a release line.
INFRASTRUCTURE_IMAGES = {"redis:7.4-alpine"}

COMPOSE_FILES = [("docker-compose.yaml",), ("docker-compose.yaml", "deploy/compose/docker-compose.gpu.yaml")]


def test_the_dockerfile_builds_exactly_the_service_packages(dockerfile: Dockerfile) -> None:
    packages = {path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml")}
    assert set(dockerfile.services) == packages
    assert {"runtime", "gpu"} <= dockerfile.targets
    assert dockerfile.args["SERVICE"] in dockerfile.services, "a build without SERVICE must still name a service"
    assert list(dockerfile.stages)[-1] == "runtime", "a build without --target must get the CPU runtime"


def test_each_service_stage_runs_a_command_its_package_installs(dockerfile: Dockerfile) -> None:
    for service, stage in dockerfile.services.items():
        assert stage.command[0] in project(service)["scripts"], service


@pytest.mark.parametrize("files", COMPOSE_FILES)
def test_compose_builds_only_services_targets_and_args_the_dockerfile_has(
    dockerfile: Dockerfile, files: tuple[str, ...]
) -> None:
    builds = compose_builds(*files)
    assert builds, "compose builds no PixTools image"
    for name, service in builds.items():
        build = service["build"]
        service_arg = build["args"]["SERVICE"]
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")) == ROOT / "Dockerfile", name
        assert build["target"] in dockerfile.targets, name
        assert set(build["args"]) <= set(dockerfile.args), name
        assert service_arg in dockerfile.services, name
        assert service["image"].startswith(f"pixtools/{service_arg}:"), name
        assert build["target"] != "gpu" or needs_torch(service_arg), f"{name}: the gpu target needs torch"


def test_compose_ops_ports_are_the_ports_the_images_expose(dockerfile: Dockerfile) -> None:
    for name, service in compose_builds("docker-compose.yaml").items():
        port = service.get("environment", {}).get("PIXTOOLS_OPS_PORT")
        if port is not None:
            assert dockerfile.services[service["build"]["args"]["SERVICE"]].expose == [int(port)], name


def test_compose_gpu_override_builds_every_torch_service_for_the_gpu() -> None:
    builds = compose_builds("docker-compose.yaml", "deploy/compose/docker-compose.gpu.yaml")
    torch_services = {name for name, service in builds.items() if needs_torch(service["build"]["args"]["SERVICE"])}
    assert torch_services
    assert {name for name, service in builds.items() if service["build"]["target"] == "gpu"} == torch_services


def test_k8s_runs_only_images_the_dockerfile_builds_on_their_exposed_ports(dockerfile: Dockerfile) -> None:
    for container in k8s_containers():
        if container["image"] in INFRASTRUCTURE_IMAGES:
            continue
        service = container["image"].removeprefix("pixtools/")
        assert service in dockerfile.services, container["name"]
        exposed = dockerfile.services[service].expose
        assert [port["containerPort"] for port in container.get("ports", [])] in ([], exposed), container["name"]
        command = container.get("command") or container.get("args") or dockerfile.services[service].command
        assert command[0] in project(service)["scripts"], container["name"]


def test_compose_and_k8s_give_the_gateway_the_redis_they_run() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    assert compose["redis"]["image"] in INFRASTRUCTURE_IMAGES
    assert compose["gateway"]["environment"]["PIXTOOLS_REDIS_URL"] == "redis://redis:6379/0"
    assert compose["gateway"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    documents = k8s_documents()
    by_kind_name = {(doc.get("kind"), doc.get("metadata", {}).get("name")): doc for doc in documents}
    redis = by_kind_name[("Deployment", "redis")]["spec"]["template"]["spec"]["containers"][0]
    assert redis["image"] in INFRASTRUCTURE_IMAGES
    assert [port["port"] for port in by_kind_name[("Service", "redis")]["spec"]["ports"]] == [6379]
    gateway = by_kind_name[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PIXTOOLS_REDIS_URL", "value": "redis://redis:6379/0"} in gateway["env"]
    allowed = by_kind_name[("NetworkPolicy", "redis-from-gateway")]["spec"]["ingress"][0]
    assert allowed["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]


def test_k8s_image_tags_pick_the_gpu_build_for_exactly_the_torch_services(dockerfile: Dockerfile) -> None:
    images = {image["name"]: image["newTag"] for image in k8s_documents()[0]["images"]}
    assert {name.removeprefix("pixtools/") for name in images} == set(dockerfile.services)
    for name, tag in images.items():
        assert tag.endswith("-cuda") == needs_torch(name.removeprefix("pixtools/")), name
