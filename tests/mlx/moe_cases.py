"""The synthetic models and prompts of the moe gate checks, shared by tests/mlx/test_moe.py
(CI) and tools/golden/moe_gates.py (which makes the expected vectors with mergekit-moe):
the expected gates depend on both."""

SHAPE = ["--hidden", "64", "--intermediate", "128", "--heads", "4", "--kv-heads", "2",
         "--vocab", "256", "--layers", "2"]
PROMPTS = {"e1": (["w100 w101 w102", "w103 ! w104"], ["w200"]),
           "e2": (["a b c", "d e"], [])}
