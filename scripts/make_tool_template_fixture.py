"""Renders a conversation with function calling (tools in the system turn, an assistant call, a
tool result) through the omni_a fixture's chat template (the Qwen3-Omni template) with
transformers' apply_chat_template, for tests/tool_calls.rs and the Realtime/Chat unit tests.

Run: /work/pyref-fx/bin/python scripts/make_tool_template_fixture.py  (transformers 5.23)
Writes tests/fixtures/tool_calls.json: {messages, tools, rendered}.
"""
import json
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained("tests/fixtures/omni_a")
tpl = json.load(open("tests/fixtures/omni_a/chat_template.json"))["chat_template"]
tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
messages = [
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Checking."}], "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": [{"type": "text", "text": "{\"temp\": 21}"}]},
]
out = tok.apply_chat_template(messages, tools=tools, chat_template=tpl, tokenize=False, add_generation_prompt=True)
out_doc = {"messages": messages, "tools": tools, "rendered": out}
with open("tests/fixtures/tool_calls.json", "w") as f:
    json.dump(out_doc, f, indent=1, ensure_ascii=False)
    f.write("\n")
