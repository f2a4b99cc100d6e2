"""models:/ URIs, model names and aliases (runyard.names): every form, and hostile strings refused with the fix."""

from __future__ import annotations

import pytest

import runyard.names as names
from runyard.errors import InvalidInput
from runyard.names import ModelRef


@pytest.mark.parametrize(("uri", "ref"), [
    ("models:/digits/3", ModelRef(None, "digits", 3)),
    ("models:/digits@production", ModelRef(None, "digits", alias="production")),
    ("models:/digits/latest", ModelRef(None, "digits")),
    ("models:/digits", ModelRef(None, "digits")),
    ("models:/vision/digits/3", ModelRef("vision", "digits", 3)),
    ("models:/vision/digits@staging-2", ModelRef("vision", "digits", alias="staging-2")),
    ("models:/vision/digits", ModelRef("vision", "digits")),
    ("models:/vision/digits/latest", ModelRef("vision", "digits")),
    ("models:/Res.Net_50-v2/2147483647", ModelRef(None, "Res.Net_50-v2", 2**31 - 1)),
    ("models:/7/1", ModelRef(None, "7", 1)),  # a name may be digits; a second part that is a number is the version
])
def test_every_form_parses(uri: str, ref: ModelRef) -> None:
    assert names.parse_model_uri(uri) == ref
    # The canonical form parses back to the same reference.
    assert names.parse_model_uri(ref.uri()) == ref


def test_latest_and_the_canonical_uri() -> None:
    assert ModelRef(None, "m").is_latest and not ModelRef(None, "m", 1).is_latest
    assert ModelRef(None, "m", alias="prod").uri("p") == "models:/p/m@prod"
    assert ModelRef("q", "m", 2).uri("p") == "models:/q/m/2"


@pytest.mark.parametrize(("uri", "match", "fix"), [
    ("x\x00", "NUL character at character 1", "Remove the character"),
    ("models:/a\x00", "NUL character", "Remove the character"),
    ("\ud800", "unpaired surrogate", "Remove the character"),
    ("models:/" + "a" * 10_000, "longer than 512 characters", "models:/NAME/3"),
    ("../x", "does not start with 'models:/'", "models:/NAME@production"),
    ("models:/", "names no model", "models:/NAME/3"),
    ("models:/../x", "the project '..' must be", "models:/PROJECT/NAME/3"),
    ("models:/a//3", "empty part", "models:/NAME/3"),
    ("models:/a/b/c/d", "4 parts", "models:/NAME/3"),
    ("models:/p/a/b", "the version 'b' is not a number", "models:/NAME/3"),
    ("models:/a/0", "from 1 to 2147483647", "numbered 1, 2, 3"),
    ("models:/a/99999999999999999999999", "from 1 to 2147483647", "numbered 1, 2, 3"),
    ("models:/a@latest", "'latest' is not an alias", "models:/NAME/latest"),
    ("models:/a@1x", "the alias '1x' must be", "models:/NAME@production"),
    ("models:/a@b@c", "an alias comes last", "models:/NAME/3"),
    ("models:/a/b/c@x", "before '@' comes NAME or PROJECT/NAME", "models:/NAME/3"),
    ("models:/-a/1", "the model name '-a' must be", "models:/NAME/3"),
    ("models:/a\u202eb/1", "bidirectional", "Remove the character"),
    ("models:/a/\uff11", "the model name", "models:/NAME/3"),  # a full-width digit is no version number
    ("runs:/1/model", "does not start with 'models:/'", "models:/NAME/3"),
])
def test_hostile_uris_are_refused_naming_problem_and_fix(uri: str, match: str, fix: str) -> None:
    with pytest.raises(InvalidInput, match=match) as e:
        names.parse_model_uri(uri)
    assert fix in (e.value.hint or "")
    assert len(e.value.message) < 400  # a 10,000-character URI is not echoed back


def test_a_uri_must_be_text() -> None:
    with pytest.raises(InvalidInput, match="must be text, but got int"):
        names.parse_model_uri(3)


@pytest.mark.parametrize("name", ["digits", "D", "a.b_c-d", "9lives", "x" * 128])
def test_valid_model_names(name: str) -> None:
    assert names.check_model_name(name) == name and names.model_name_problem(name) is None


@pytest.mark.parametrize(("name", "shown"), [
    ("", "''"), ("x" * 129, "129 characters"), ("-a", "'-a'"), (".a", "'.a'"), ("a/b", "'a/b'"), ("a b", "'a b'"),
    ("a\x00", "NUL character"), ("\ud800", "unpaired surrogate"), ("é", "'é'"), (None, "NoneType"),
])
def test_invalid_model_names_name_the_rule_and_a_fix(name, shown: str) -> None:
    with pytest.raises(InvalidInput, match="A model name must be 1-128 letters") as e:
        names.check_model_name(name)
    assert shown in e.value.message
    assert "Use a name such as" in (e.value.hint or "")


@pytest.mark.parametrize("alias", ["production", "Staging", "champion_2", "a-b", "a" * 128])
def test_valid_aliases(alias: str) -> None:
    assert names.check_alias(alias) == alias


@pytest.mark.parametrize("alias", ["latest", "", "1", "123", "1st", "_x", "a.b", "a@b", "a" * 129, "a\x00", "\ud800"])
def test_invalid_aliases(alias: str) -> None:
    with pytest.raises(InvalidInput) as e:
        names.check_alias(alias)
    assert e.value.hint and names.alias_problem(alias) is not None
