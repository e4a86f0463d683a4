"""The README's examples keep working: its Python blocks run, and every `prompt-retriever` command in
README.md, docs/ and benchmarks/README.md names a command that exists, with options its `--help` lists.

Commands are checked against the CLI's own definition (the command Typer builds from `prompt_retriever.cli.app`),
not run: a command names a subcommand path (`queries import`) and options; every option must be one the
command shows in `--help` (hidden, deprecated spellings do not count). Python blocks are executed in a
scratch folder with the bundled model; `load_corpus()` without arguments is narrowed to two genres of the
bundled corpus so the example stays quick, and a block that needs `runs/bundled` (made by `make run`) is
skipped when the run is not there, as on a clean clone.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`([^`\n]*prompt-retriever [^`\n]*)`")
PROGRAM = re.compile(r"(?:^|[\s|;&(])(?:\S*/)?prompt-retriever(?=\s|$)")
RUN = "runs/bundled"


def code_blocks(path: Path) -> list[tuple[str, int, str]]:
    """(language, first line number, text) of every fenced block."""
    blocks, lang, start, lines = [], None, 0, []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line.strip())
        if lang is None and m:
            lang, start, lines = m.group(1), n + 1, []
        elif lang is not None and line.strip() == "```":
            blocks.append((lang, start, "\n".join(lines)))
            lang = None
        elif lang is not None:
            lines.append(line)
    return blocks


def shell_commands(path: Path) -> list[tuple[str, str]]:
    """(`FILE:LINE`, command line) of every `prompt-retriever ...` call: shell blocks (continuation lines
    joined, comments dropped) and inline code spans in the prose."""
    found: list[tuple[str, str]] = []
    in_code = set()
    for lang, start, text in code_blocks(path):
        in_code.update(range(start, start + text.count("\n") + 1))
        if lang not in ("bash", "sh", "shell", "console", ""):
            continue
        logical, first = "", start
        for n, line in enumerate(text.splitlines(), start):
            if not logical:
                first = n
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            logical += line
            found.extend((f"{path.name}:{first}", c) for c in calls(logical))
            logical = ""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if n in in_code:
            continue
        for span in INLINE.findall(line):
            found.extend((f"{path.name}:{n}", c) for c in calls(span))
    return found


def calls(line: str) -> list[str]:
    """The `prompt-retriever ...` invocations in one shell line (after `&&`, `|`, env assignments)."""
    out = []
    for m in PROGRAM.finditer(line):
        rest = line[m.end() :]
        rest = re.split(r"\s#|&&|\|\||[|;]", rest)[0]  # up to a comment or the next command
        out.append(rest.strip())
    return out


def tokens(args: str) -> list[str]:
    try:
        words = shlex.split(args)
    except ValueError:  # an unbalanced quote in prose: fall back to plain words
        words = args.split()
    # Placeholders of the prose ([--epochs N], ..., A B) are not options.
    return [w.strip("[]") for w in words if w not in ("...", "[...]")]


def is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def visible_options(command: Any) -> set[str]:
    names: set[str] = {"--help"}
    for param in command.params:
        if is_option(param) and not param.hidden:
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def takes_value(command: Any, name: str) -> bool:
    """Whether option `name` of `command` is followed by a value (not a flag)."""
    return any(is_option(p) and name in p.opts and not p.is_flag and not p.count for p in command.params)


def check_command(root: Any, args: str) -> list[str]:
    """Problems with one invocation: an unknown command, or options its --help does not list."""
    problems: list[str] = []
    command = root
    words = tokens(args)
    i = 0
    path = ["prompt-retriever"]
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-[\d.]+(e-?\d+)?", word):
            name = word.split("=", 1)[0]
            if name not in visible_options(command):
                problems.append(f"{' '.join(path)}: option {name} is not in its --help")
            elif "=" not in word and takes_value(command, name):
                i += 1  # its value, never a command name (`index -c FILE --out DIR`)
        elif is_group(command):
            if word.isupper():  # a placeholder of the prose: `prompt-retriever COMMAND --help`
                return problems
            sub = command.commands.get(word)
            if sub is None or getattr(sub, "hidden", False):
                problems.append(f"{' '.join(path)}: no command {word!r}")
                return problems
            command = sub
            path.append(word)
        i += 1
    runs_alone = getattr(command, "invoke_without_command", False)  # `index -c FILE --out DIR` builds
    if is_group(command) and command is not root and "--help" not in words and not runs_alone:
        problems.append(f"{' '.join(path)}: a command group, no command given")
    return problems


ALL_COMMANDS = [item for page in PAGES if page.exists() for item in shell_commands(page)]


def test_pages_have_commands():
    readme = [where for where, _ in ALL_COMMANDS if where.startswith("README.md:")]
    assert len(readme) >= 10, readme


@pytest.mark.parametrize(("where", "args"), ALL_COMMANDS, ids=[w for w, _ in ALL_COMMANDS])
def test_command_is_valid(where, args):
    from prompt_retriever.cli import app

    root = typer.main.get_command(app)
    assert is_group(root)
    problems = check_command(root, args)
    assert not problems, f"{where}: prompt-retriever {args}\n" + "\n".join(problems)


def test_checker_catches_mistakes():
    """The checker itself: an unknown command, an unknown option and a hidden alias are caught."""
    from prompt_retriever.cli import app

    root = typer.main.get_command(app)
    assert check_command(root, 'search "x" -k 5') == []
    assert check_command(root, "no-such-command") != []
    assert check_command(root, 'search "x" --no-such-option 1') != []
    hidden = [
        (name, opt)
        for name, cmd in root.commands.items()
        for p in cmd.params
        if is_option(p) and p.hidden
        for opt in p.opts
    ]
    for name, opt in hidden[:3]:
        assert check_command(root, f"{name} {opt} x") != []


def python_blocks() -> list[tuple[str, str]]:
    return [(f"README.md:{start}", text) for lang, start, text in code_blocks(README) if lang == "python"]


@pytest.mark.parametrize(("where", "code"), python_blocks(), ids=[w for w, _ in python_blocks()])
def test_python_example_runs(where, code, tmp_path, monkeypatch, no_network, capsys):
    import prompt_retriever

    if RUN in code:
        if not (ROOT / RUN / "system.json").is_file():
            pytest.skip(f"{where} needs {RUN} (made by `make run`)")
        (tmp_path / "runs").symlink_to(ROOT / "runs", target_is_directory=True)
        try:  # a run made by an older version is refused with "rerun the pipeline": not this test's business
            prompt_retriever.PromptRetriever.from_run(ROOT / RUN)
        except prompt_retriever.IndexLoadError as e:
            pytest.skip(f"{RUN} cannot be loaded: {e}")

    real_load = prompt_retriever.load_corpus

    def small_bundled(*args, **kwargs):
        prompts = real_load(*args, **kwargs)
        if args or kwargs:
            return prompts
        return [p for p in prompts if p.genre in ("Horror", "Memoir")]

    monkeypatch.setattr(prompt_retriever, "load_corpus", small_bundled)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip(), f"{where} printed nothing"
