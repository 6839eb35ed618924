"""What the commands say about counts: a singular for one, a range only for more than one."""
from echo_rnn_tf1.envelope import plural, seeds_text


def test_one_is_singular_and_other_counts_plural():
    assert [plural(n, "seed") for n in (0, 1, 2)] == ["0 seeds", "1 seed", "2 seeds"]
    assert plural(1, "compiled program") == "1 compiled program"


def test_one_seed_is_no_range():
    assert seeds_text([4294967294]) == "seed 4294967294"
    assert seeds_text([7, 8, 9]) == "seeds 7-9"
