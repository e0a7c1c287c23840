"""Trainers of the tasks not yet on the training engine: each module defines `class Trainer`
(step(), save(), load(), describe_data(), samples_per_step(), unit), run by legacy.train. The task
registry is tasks/__init__.py; a task moves from here to a tasks/ adapter (engine.py)."""
