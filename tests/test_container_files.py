"""Static checks of the container files (Dockerfile, Singularity.def) and the cluster docs.

The image itself is built and run by ``make container-test`` (scripts/container_test.sh);
these checks run in the normal test suite and need neither podman nor a network.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bids_app.__about__ import __version__

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SINGULARITY = ROOT / "Singularity.def"
DOC_FILES = sorted((ROOT / "docs" / "slurm").glob("*.sh")) + [ROOT / "docs" / "containers.md"]
LEVEL = re.compile(r"(?:^|\s)(?:participant|group)(?=\s|$)")
RUNNER = re.compile(r"strokedfc|apptainer|singularity|docker|podman|\$SIF|\$IMAGE")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


# ------------------------------------------------------------------------------ parsers
def logical_lines(text: str) -> list[str]:
    """Join backslash-continued lines and multi-line shell arrays ``NAME=(...)``; drop blank
    lines and whole-line comments."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined = current + stripped
        if re.match(r"\s*\w+\+?=\(", joined) and joined.count("(") > joined.count(")"):
            current = joined + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions (KEYWORD, arguments) per build stage; stage 0 holds the global ARGs."""
    stages: list[list[tuple[str, str]]] = [[]]
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), args.strip()))
    return stages


def key_values(args: str) -> dict[str, str]:
    """Parse ``KEY=VALUE ...`` (ENV, LABEL, ARG) with shell quoting."""
    pairs = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        pairs[key] = value if sep else ""
    return pairs


def expand(value: str, variables: dict[str, str]) -> str:
    """Substitute ``${NAME}`` / ``$NAME`` from ``variables`` (others left as they are)."""

    def repl(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, value)


def runtime_stage() -> dict:
    """ENV (ARG defaults expanded), LABELs, USER, ENTRYPOINT of the final stage."""
    stages = dockerfile_stages(DOCKERFILE.read_text())
    final = stages[-1]
    args: dict[str, str] = {}
    for keyword, value in stages[0] + final:
        if keyword == "ARG":
            for key, default in key_values(value).items():
                args[key] = expand(default, args)
    info: dict = {"env": {}, "labels": {}, "user": None, "entrypoint": None, "args": args}
    for keyword, value in final:
        if keyword == "ENV":
            for key, item in key_values(value).items():
                info["env"][key] = expand(item, args)
        elif keyword == "LABEL":
            info["labels"].update({k: expand(v, args) for k, v in key_values(value).items()})
        elif keyword in ("USER", "ENTRYPOINT"):
            info[keyword.lower()] = value
    return info


def singularity_sections() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Header ``Key: value`` pairs and the lines of each ``%section``."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current = None
    for raw in SINGULARITY.read_text().splitlines():
        line = raw.strip()
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections[current] = []
        elif current is None:
            if line and not line.startswith("#"):
                key, _, value = line.partition(":")
                header[key.strip()] = value.strip()
        elif line and not line.startswith("#"):
            sections[current].append(line)
    return header, sections


def documented_options(path: Path) -> set[str]:
    """strokedfc options used in a doc: after the analysis level on a command line that runs
    strokedfc (directly, in a container or via ``$SIF``), and in shell arrays ``*_ARGS=(...)``."""
    text = path.read_text()
    if path.suffix == ".md":
        text = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S))
    found = set()
    for line in logical_lines(text):
        match = LEVEL.search(line)
        if re.match(r"\s*[A-Z_]*ARGS\+?=\(", line):
            found |= set(OPTION.findall(line))
        elif match and RUNNER.search(line):
            found |= set(OPTION.findall(line[match.end() :]))
    return found


# -------------------------------------------------------------------------------- tests
def test_dockerfile_entrypoint_user_and_labels():
    info = runtime_stage()
    assert info["entrypoint"] == '["strokedfc"]'
    user = info["user"].split(":")[0]
    assert user not in ("", "0", "root")
    labels = info["labels"]
    for key in ("title", "version", "source", "licenses", "description"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_dockerfile_env_gpu_threads_and_writable_paths():
    env = runtime_stage()["env"]
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert env[name] == "1", name
    # an arbitrary --user with a read-only root: every cache and config dir lives in /tmp
    for name in ("HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "TORCH_HOME"):
        assert env[name].startswith("/tmp"), (name, env[name])
    assert env["STROKEDFC_CONTAINER_TAG"] == f"strokedfc:{__version__}"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_dockerfile_base_and_torch_args():
    stages = dockerfile_stages(DOCKERFILE.read_text())
    assert key_values(dict(stages[0])["ARG"]) == {"BASE_IMAGE": "debian:bookworm-slim"}
    froms = [stage[0][1] for stage in stages[1:]]
    assert froms[0] == "${BASE_IMAGE} AS builder" and froms[-1] == "${BASE_IMAGE} AS runtime"
    builder_args = {}
    for keyword, value in stages[1]:
        if keyword == "ARG":
            builder_args.update(key_values(value))
    constraints = (ROOT / "requirements" / "constraints.txt").read_text()
    pin = re.search(r"^torch==(\S+)", constraints, flags=re.M).group(1)
    assert builder_args["TORCH_SPEC"] == f"torch=={pin}"


def test_singularity_header_and_runscript():
    header, sections = singularity_sections()
    assert header["Bootstrap"] == "docker"
    assert header["From"] == f"strokedfc:{__version__}"
    assert sections["runscript"] == ['exec strokedfc "$@"']


def test_singularity_environment_mirrors_dockerfile_env():
    _, sections = singularity_sections()
    exported = {}
    for line in sections["environment"]:
        assert line.startswith("export "), line
        exported.update(key_values(line[len("export ") :]))
    assert exported == runtime_stage()["env"]


def test_logical_lines_and_option_extraction(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(
        "#SBATCH --array=1-3\n"
        "EXTRA_ARGS=(--nprocs 2\n"
        "  --omp-nthreads 1)\n"
        "srun apptainer run --nv strokedfc.sif /bids /out participant \\\n"
        "  # a comment\n"
        "  --participant-label 01 -w /work \\\n"
        '  "${EXTRA_ARGS[@]}"\n'
        "echo group --not-an-option\n"
    )
    assert documented_options(script) == {
        "--nprocs",
        "--omp-nthreads",
        "--participant-label",
        "-w",
    }


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_documented_options_exist(path):
    from bids_app.cli.parser import build_parser

    known = {s for action in build_parser()._actions for s in action.option_strings}
    used = documented_options(path)
    assert used <= known, f"{path.name}: unknown options {sorted(used - known)}"


def test_option_extraction_finds_the_commands():
    per_file = {p.name: documented_options(p) for p in DOC_FILES}
    for name in ("containers.md", "participant_array.sh", "group_cnn_fold.sh", "group_env.sh"):
        assert per_file[name], f"{name}: no strokedfc command found"
    assert "--folds" in per_file["group_cnn_fold.sh"]
    assert "--use-plugin" in per_file["participant_plugin.sh"]
    assert "--participant-label" in per_file["participant_array.sh"]
    assert len(set().union(*per_file.values())) >= 15


def test_docs_cover_the_cluster_recipes():
    names = {p.name for p in DOC_FILES}
    assert len(names) >= 5, names
    text = "\n".join(p.read_text() for p in DOC_FILES)
    for needle in ("SLURM_ARRAY_TASK_ID", "--folds", "afterok", "torchrun", "--use-plugin"):
        assert needle in text, needle
    assert "--gpus all" in text and "--nv" in text
