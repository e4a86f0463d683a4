"""The CLI as people know CLIs: --version, global --quiet/--verbose, shell completion, help without
`<bool>`, help text for every option, and the stage names in `pipeline --until`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from prompt_retriever import __version__
from prompt_retriever.cli import app
from prompt_retriever.pipeline import STAGES

runner = CliRunner()

COMMANDS = [
    [],
    ["search"],
    ["index"],
    ["evaluate"],
    ["compare"],
    ["train"],
    ["soup"],
    ["push"],
    ["pipeline"],
    ["serve"],
    ["demo"],
    ["corpus"],
    ["corpus", "validate"],
    ["corpus", "stats"],
    ["queries"],
    ["queries", "generate"],
    ["queries", "split"],
    ["queries", "stats"],
    ["queries", "import"],
]


def help_text(*command: str) -> str:
    res = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    return res.output


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"prompt-retriever {__version__}"


def test_shell_completion_is_offered():
    text = help_text()
    assert "--install-completion" in text and "--show-completion" in text
    # --show-completion is a flag that prints the script of the shell it detects among its parent processes
    # (none when the tests run detached from a shell), so the bash script is asked for by name, through the
    # variable the completion itself sets
    env = {"_PROMPT_RETRIEVER_COMPLETE": "source_bash"}
    res = runner.invoke(app, [], env=env, prog_name="prompt-retriever")
    assert res.exit_code == 0 and "complete -o default -F" in res.output and "prompt-retriever" in res.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_shows_flags_as_flags(command):
    assert "<bool>" not in help_text(*command)


def commands(group, path=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def test_every_option_has_help():
    import typer

    missing = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, cmd in commands(typer.main.get_command(app))
        for param in cmd.params
        if not getattr(param, "hidden", False) and not (param.help or "").strip()
    ]
    assert not missing


def option_help(command: str, option: str) -> str:
    import typer

    cmd = typer.main.get_command(app).commands[command]
    [param] = [p for p in cmd.params if option in p.opts]
    return param.help or ""


def test_evaluation_options_say_what_they_do():
    for command in ("evaluate", "pipeline"):
        assert "Bootstrap resamples" in option_help(command, "--bootstrap")
        assert "Randomization-test resamples" in option_help(command, "--permutations")
        assert "PNG plots" in option_help(command, "--plots")


def test_pipeline_until_lists_the_stage_names():
    text = option_help("pipeline", "--until")
    assert text.endswith(", ".join(STAGES) + ".")
    for stage in STAGES:
        assert stage in text


def test_quiet_and_verbose_are_global_options(tmp_path):
    slip = "<Adventure> </Adventure> <Courage> </Adventure> <Slip {i}> </Slip {i}> prompt Slip {i}."
    lines = [slip.format(i=i) for i in range(6)]  # tags closed with the genre's name: one repair each
    lines.append("<Poetry> </Poetry> <Hope> </Hope> <Plain> </Plain> prompt A plain line.")
    path = tmp_path / "slips.txt"
    path.write_text("\n".join(lines) + "\n")

    default = runner.invoke(app, ["corpus", "validate", "-c", str(path)])
    assert default.exit_code == 0, default.output
    shown = default.output.count(": warning: ")
    assert 0 < shown < 6 and "--verbose lists every one" in default.output

    verbose = runner.invoke(app, ["-v", "corpus", "validate", "-c", str(path)])
    assert verbose.exit_code == 0 and verbose.output.count(": warning: ") == 6

    quiet = runner.invoke(app, ["--quiet", "corpus", "validate", "-c", str(path)])
    assert quiet.exit_code == 0 and ": warning: " not in quiet.output and "repairs by kind" not in quiet.output
    assert "7 prompts, 0 errors" in quiet.output  # the result stays

    both = runner.invoke(app, ["-q", "-v", "corpus", "validate", "-c", str(path)])
    assert both.exit_code == 2 and "--quiet and --verbose" in both.output


def test_quiet_search_prints_only_the_results(small_corpus_path, tmp_path):
    corpus = tmp_path / "corpus.txt"  # a corpus of its own: its index is built here, with a bar unless quiet
    extra = "<Poetry> </Poetry> <Hope> </Hope> <Quiet Morning> </Quiet Morning> prompt A quiet morning poem."
    corpus.write_text(small_corpus_path.read_text() + extra + "\n")
    quiet = runner.invoke(app, ["-q", "search", "lonely lighthouse", "-k", "2", "-c", str(corpus)])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.startswith("1. ") and "embedding" not in quiet.output and "all-MiniLM" not in quiet.output
    loud = runner.invoke(app, ["search", "lonely lighthouse", "-k", "2", "-c", str(corpus)])
    assert loud.exit_code == 0 and "all-MiniLM-L6-v2" in loud.output.splitlines()[0]  # the system line


def test_verbose_shows_the_libraries_log_messages_for_its_command_only(small_corpus_path, capsys):
    import logging

    from prompt_retriever.cli import output

    library = logging.getLogger("some.library")
    res = runner.invoke(app, ["-v", "corpus", "stats", "-c", str(small_corpus_path), "--json"])
    assert res.exit_code == 0 and output.mode.verbose
    capsys.readouterr()
    library.info("loading weights")
    assert "INFO some.library: loading weights" in capsys.readouterr().err
    res = runner.invoke(app, ["corpus", "stats", "-c", str(small_corpus_path), "--json"])
    assert res.exit_code == 0 and not output.mode.verbose
    library.info("loading weights")
    assert "loading weights" not in capsys.readouterr().err
