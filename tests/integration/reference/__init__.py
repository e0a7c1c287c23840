"""Reference loops: what a user could write instead of the engine, with Paddle and the suite's model
alone. The differential tests run them in the same image as the engine and compare the metrics."""
