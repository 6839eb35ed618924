"""``python -m echo_rnn_tf1`` and the ``echo-rnn-tf1`` command."""
from .failures import stop_while_loading


def run():
    stop_while_loading()  # (until the command's own handlers are in place)
    from .cli import entry_point

    entry_point()


if __name__ == "__main__":
    run()
