"""Locks that keep two runs out of one experiment: a run takes the lock of the directory it
writes (a recipe directory, a job array's outputs) and a second run that finds it held says
who holds it and stops. Holds dir_lock.py; imports nothing from the rest of the toolkit, so
that the shell tools in utils/ can use it too."""
