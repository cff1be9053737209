"""The ``phototagger`` command as the tests run it: in process, as a person would type it."""

from click.testing import CliRunner

from phototagger.cli import main


def run(*args) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``phototagger ARGS`` (any argument turned to text)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr
