from __future__ import annotations

from voice.chunker import Chunker


def _run(tokens: list[str]) -> tuple[list[str], Chunker]:
    chunker = Chunker()
    out = []
    for token in tokens:
        out += chunker.feed(token)
    return out + chunker.flush(), chunker


def test_first_clause_leaves_early_then_sentences() -> None:
    chunker = Chunker()
    got = []
    for token in ["Yes", ",", " the", " brake", " pads", " fit", ",", " they", " cost"]:
        got += chunker.feed(token)
    assert got == ["Yes, the brake pads fit,"]  # comma after four words: speak now
    for token in [" 49", ".", "90", " euros", ".", " Anything", " else", "?"]:
        got += chunker.feed(token)
    got += chunker.flush()
    assert got == ["Yes, the brake pads fit,", "they cost 49.90 euros.", "Anything else?"]


def test_abbreviations_do_not_end_sentences() -> None:
    out, _ = _run(["Das", " passt", " z.B.", " für", " den", " Golf", " 7.", " Gern", "."])
    assert out == ["Das passt z.B. für den Golf 7.", "Gern."]


def test_tool_calls_are_lifted_and_never_spoken() -> None:
    tokens = ["Moment", ".", " <tool", "_call>", '{"name": "parts_lookup", ',
              '"arguments": {"vehicle": "Golf 7", "part": "brake pads"}}', "</tool_call>"]
    out, chunker = _run(tokens)
    assert out == ["Moment."]
    assert [(c.name, c.arguments) for c in chunker.tool_calls] == [
        ("parts_lookup", {"vehicle": "Golf 7", "part": "brake pads"})]


def test_unclosed_or_broken_tool_calls_are_tolerated() -> None:
    _, chunker = _run(['<tool_call>{"name": "kb_search", "arguments": "{\\"q\\": \\"hours\\"}"}'])
    assert chunker.tool_calls[0].arguments == {"q": "hours"}
    out, broken = _run(["<tool_call>{not json</tool_call>", "Sorry."])
    assert out == ["Sorry."] and broken.tool_errors and not broken.tool_calls


def test_a_lone_angle_bracket_is_spoken() -> None:
    out, _ = _run(["Less", " than", " <", " five", "."])
    assert out == ["Less than < five."]
