"""utils/parse_options.sh: Kaldi's option semantics, including the error cases."""

import subprocess
import textwrap

import pytest


@pytest.fixture
def script(tmp_path, repo):
    path = tmp_path / "prog.sh"
    path.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        set -euo pipefail
        stage=0
        num_jobs=4
        use_gpu=false
        lm_dir=data/lm
        seeds="1 2 3"
        help_message="Usage: prog.sh [options] <in> <out>"
        . {repo}/utils/parse_options.sh
        echo "stage=$stage num_jobs=$num_jobs use_gpu=$use_gpu lm_dir=$lm_dir seeds=$seeds"
        echo "positional=$#:$*"
        """))
    path.chmod(0o755)
    return path


def run(script, *args):
    return subprocess.run([str(script), *args], capture_output=True, text=True)


def test_dashes_become_underscores_and_values_are_set(script):
    out = run(script, "--num-jobs", "8", "--lm-dir", "a dir/with space")
    assert out.returncode == 0, out.stderr
    assert "num_jobs=8 use_gpu=false lm_dir=a dir/with space" in out.stdout


def test_positional_arguments_stay(script):
    out = run(script, "--stage", "3", "in", "--not-an-option-any-more", "out")
    assert out.returncode == 0, out.stderr
    assert "stage=3" in out.stdout
    assert "positional=3:in --not-an-option-any-more out" in out.stdout


def test_double_dash_ends_options(script):
    out = run(script, "--stage", "2", "--", "--stage")
    assert "stage=2" in out.stdout and "positional=1:--stage" in out.stdout


def test_unknown_option_is_an_error_naming_it(script):
    out = run(script, "--nmu-jobs", "8")
    assert out.returncode == 1
    assert "unknown option '--nmu-jobs'" in out.stderr
    assert out.stdout == ""


def test_boolean_accepts_only_true_or_false(script):
    assert "use_gpu=true" in run(script, "--use-gpu", "true").stdout
    out = run(script, "--use-gpu", "yes")
    assert out.returncode == 1
    assert "boolean" in out.stderr and "'yes'" in out.stderr


def test_missing_value_is_an_error(script):
    out = run(script, "--stage")
    assert out.returncode == 1 and "needs a value" in out.stderr


def test_equals_form_is_rejected(script):
    out = run(script, "--stage=3")
    assert out.returncode == 1 and "--name value" in out.stderr


def test_config_is_sourced_first_and_command_line_wins(script, tmp_path):
    conf = tmp_path / "tiny.conf"
    conf.write_text("stage=7\nnum_jobs=1\n")
    # --stage given before --config still wins over the config file.
    out = run(script, "--stage", "2", "--config", str(conf))
    assert out.returncode == 0, out.stderr
    assert "stage=2 num_jobs=1" in out.stdout


def test_missing_config_file_is_an_error(script, tmp_path):
    out = run(script, "--config", str(tmp_path / "absent.conf"))
    assert out.returncode == 1 and "cannot read config file" in out.stderr


def test_help_prints_the_callers_help_message(script):
    out = run(script, "--help")
    assert out.returncode == 0
    assert out.stdout.strip() == "Usage: prog.sh [options] <in> <out>"


def test_integer_accepts_only_a_whole_number(script):
    assert "num_jobs=-1" in run(script, "--num-jobs", "-1").stdout
    out = run(script, "--num-jobs", "ten")
    assert out.returncode == 1
    assert "option '--num-jobs' is an integer: give a whole number, not 'ten'" in out.stderr
    # A variable that is neither keeps taking anything.
    assert "lm_dir=7" in run(script, "--lm-dir", "7").stdout


def test_a_list_a_config_file_shortens_to_one_number_stays_a_list(script, tmp_path):
    conf = tmp_path / "tiny.conf"
    conf.write_text('seeds="1"\nnum_jobs=2\n')
    out = run(script, "--config", str(conf), "--seeds", "4 5")
    assert out.returncode == 0, out.stderr
    assert "seeds=4 5" in out.stdout
    out = run(script, "--config", str(conf), "--seeds", "", "--num-jobs", "x")  # the default's kind: integer
    assert out.returncode == 1 and "option '--num-jobs' is an integer" in out.stderr


def test_config_file_typos_and_wrong_kinds_are_errors(script, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# a comment\nstage=3\n  num_job=2   # misspelt\n")
    out = run(script, "--config", str(conf))
    assert out.returncode == 1 and out.stdout == ""
    assert f"config file '{conf}' line 3: unknown variable 'num_job'" in out.stderr
    conf.write_text("stage=3\nnum_jobs=ten\n")
    out = run(script, "--config", str(conf))
    assert out.returncode == 1
    assert f"config file '{conf}' line 2: 'num_jobs' is an integer: give a whole number, not 'ten'" in out.stderr
    conf.write_text('use_gpu=yes\nlm_dir="any thing"\n')
    out = run(script, "--config", str(conf))
    assert out.returncode == 1 and "line 1: 'use_gpu' is boolean: give true or false, not 'yes'" in out.stderr
    conf.write_text('use_gpu=true\nexport lm_dir="any thing"\nnum_jobs=3\n')
    out = run(script, "--config", str(conf))
    assert out.returncode == 0, out.stderr
    assert "num_jobs=3 use_gpu=true lm_dir=any thing" in out.stdout


@pytest.mark.parametrize("recipe", ["synth", "librispeech"])
def test_the_recipes_reject_a_misspelt_setting_before_any_stage(repo, tmp_path, recipe):
    conf = tmp_path / "typo.conf"
    conf.write_text("num_leave=50\n")
    out = subprocess.run(["./run.sh", "--config", str(conf)], cwd=repo / "egs" / recipe / "s5",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"line 1: unknown variable 'num_leave'" in out.stderr
    assert "Stage 1" not in out.stderr
    out = subprocess.run(["./run.sh", "--num-leaves", "ten"], cwd=repo / "egs" / recipe / "s5",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "'--num-leaves' is an integer" in out.stderr
    # Their own settings files pass the same rules.
    for own in sorted((repo / "egs" / recipe / "s5" / "conf").glob("*.conf")):
        out = subprocess.run(["./run.sh", "--config", str(own), "--help"], cwd=repo / "egs" / recipe / "s5",
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (own, out.stderr)
