"""A small reader of docker/*.Dockerfile for the tests: instructions, ARG defaults, the final stage."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dev.harness.common import REPO_ROOT

DOCKER_DIR = REPO_ROOT / "docker"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV, ...
    args: str  # the rest of the logical line, continuations joined

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD/ENTRYPOINT/SHELL; a shell-form line fails the test."""
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} is not in exec form: {self.args}"
        return [str(v) for v in value]


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction]
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults, global and per stage

    @classmethod
    def read(cls, name: str) -> Dockerfile:
        path = DOCKER_DIR / name
        logical: list[str] = []
        pending = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if pending and line.startswith("#"):
                continue  # a comment inside a continued instruction
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            logical.append(pending + line)
            pending = ""
        instructions = []
        for text in logical:
            keyword, _, rest = text.partition(" ")
            instructions.append(Instruction(keyword.upper(), rest.strip()))
        dockerfile = cls(path, instructions)
        for ins in instructions:
            if ins.keyword == "ARG" and "=" in ins.args:
                key, _, value = ins.args.partition("=")
                dockerfile.args[key] = value.strip('"')
        return dockerfile

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m[1] or m[2], m[0]), text)

    def final_stage(self) -> list[Instruction]:
        starts = [i for i, ins in enumerate(self.instructions) if ins.keyword == "FROM"]
        return self.instructions[starts[-1] :]

    def base_image(self) -> str:
        """The final stage's base image, ARG defaults filled in."""
        return self.expand(self.final_stage()[0].args.split()[0])

    def last(self, keyword: str) -> Instruction:
        found = [ins for ins in self.final_stage() if ins.keyword == keyword]
        assert found, f"{self.path.name} has no {keyword} in its final stage"
        return found[-1]

    def all(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.final_stage() if ins.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV of the final stage (``KEY=value`` pairs; later ones win), ARGs expanded."""
        env: dict[str, str] = {}
        for ins in self.all("ENV"):
            for pair in shlex.split(ins.args):
                key, _, value = pair.partition("=")
                env[key] = self.expand(value)
        return env

    def copy_sources(self) -> list[str]:
        """Sources of COPY instructions that read the build context (not ``--from=`` another stage)."""
        sources: list[str] = []
        for ins in self.instructions:
            if ins.keyword != "COPY":
                continue
            parts = shlex.split(ins.args)
            if any(p.startswith("--from=") for p in parts):
                continue
            files = [p for p in parts if not p.startswith("--")]
            sources += files[:-1]
        return sources

    def run_text(self) -> str:
        return "\n".join(self.expand(ins.args) for ins in self.final_stage() if ins.keyword == "RUN")
