"""``python -m echo_rnn_tf1`` and the ``echo-rnn-tf1`` command."""
from .cli import entry_point as run

if __name__ == "__main__":
    run()
