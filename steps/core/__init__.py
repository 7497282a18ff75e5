"""What every other part of the toolkit stands on.

- atomic.py      crash-safe writes (a temporary name and a rename), `.done` markers with input
                 fingerprints, skipping a step whose inputs did not change
- log.py         logging set-up, progress bars, the failing-log report, the TensorBoard writer
- jobs.py        running a program as JOB=1:nj through the recipe's $cmd
- config.py      YAML configs loaded into typed dataclasses (unknown keys named with file and key),
                 merging of override files
- checkpoint.py  torch checkpoints saved atomically, loaded the same way on torch 1.13 and 2.x
- dir_lock.py    the run lock of a directory (who holds it, stale holders)
- run_env.py     run_env.json: the thread count, CPU, SIMD level and library versions a
                 run's floats depend on

May import the standard library, numpy, torch, yaml, tqdm; nothing else of `steps`.
"""
