import pytest
from absl import flags

from tfattr.utils import flag_util


def test_second_definition_reuses_the_first_and_files_it_under_the_caller():
    name = "flag_util_test_shared"
    first = flag_util.define(flags.DEFINE_integer, name, 3, "first")
    again = flag_util.define(flags.DEFINE_integer, name, 3, "second")
    assert again is first and flags.FLAGS[name].default == 3
    assert name in {f.name for f in flags.FLAGS.get_flags_for_module(__name__)}


def test_a_clash_of_defaults_is_an_error():
    flag_util.define(flags.DEFINE_string, "flag_util_test_clash", "a", "first")
    with pytest.raises(ValueError, match="flag_util_test_clash"):
        flag_util.define(flags.DEFINE_string, "flag_util_test_clash", "b", "second")
