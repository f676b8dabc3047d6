"""Chat completion and streamed completion through the official openai package."""
import os

from openai import OpenAI

client = OpenAI(base_url=os.environ["WARDEN_BASE_URL"], api_key=os.environ["WARDEN_API_KEY"])
model = os.environ["WARDEN_MODEL"]

resp = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Say hello."}],
    max_tokens=8,
    temperature=0,
)
assert resp.choices[0].message.content, resp
assert resp.usage.completion_tokens >= 1, resp.usage
print("completion ok:", repr(resp.choices[0].message.content))

chunks = 0
text = ""
usage = None
for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Count to three."}],
    max_tokens=12,
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            text += choice.delta.content
            chunks += 1
assert chunks >= 2, chunks
assert usage and usage.completion_tokens >= 1, usage
print("stream ok:", chunks, "chunks,", repr(text))
