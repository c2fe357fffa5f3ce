"""Compile every pipeline into ``compiled/``: ``python -m pipelines.compile [--out DIR]``.

Compilation reads no environment: the same source always gives the same YAML.
"""

import argparse
import ast
import re
from pathlib import Path

from kfp import compiler

from pipelines.adapter_tuning import adapter_tuning

PIPELINES = {"adapter_tuning.yaml": adapter_tuning}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "compiled"


TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*:")
HEADER_LINE = re.compile(r"^# (PIPELINE DEFINITION|Name: |Description: |Inputs:|Outputs:|   \w+: )")
DICT_DEFAULT = re.compile(r"^(#\s+\w+: dict \[Default: )(\{.*\})(\])$")


def normalise_header(text: str) -> str:
    r"""Repair and stabilise KFP's comment header (the lines before the first YAML key).

    KFP writes a multi-line string default across raw lines, which breaks the YAML; those lines
    are folded back into their comment with ``\n``. Dict defaults are rendered from a protobuf
    map whose order changes from process to process; their keys are sorted, so the compiled
    file is byte-identical on every compile.
    """
    lines = text.splitlines(keepends=True)
    body = next(i for i, line in enumerate(lines) if TOP_LEVEL_KEY.match(line))
    header: list[str] = []
    for line in lines[:body]:
        if HEADER_LINE.match(line) or not header:
            header.append(line.rstrip("\n"))
        else:
            header[-1] += "\\n" + line.rstrip("\n")
    for index, line in enumerate(header):
        match = DICT_DEFAULT.match(line)
        if match:
            value = ast.literal_eval(match.group(2))
            header[index] = f"{match.group(1)}{dict(sorted(value.items()))}{match.group(3)}"
    return "".join(line + "\n" for line in header) + "".join(lines[body:])


def compile_all(out_dir: Path) -> list[Path]:
    """Compile each pipeline to ``out_dir``; return the written files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, pipeline in PIPELINES.items():
        path = out_dir / file_name
        tmp = path.with_name(f".tmp-{file_name}")
        compiler.Compiler().compile(pipeline, str(tmp))
        tmp.write_text(normalise_header(tmp.read_text(encoding="utf-8")), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for path in compile_all(args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
