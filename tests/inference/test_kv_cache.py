"""The batcher's key/value cache (inference/kv_cache.py): layers that decode into spare room give what transformers'
own ``DynamicLayer`` gives, copy their states only when the room runs out, and the batch's cache is one of them."""

from unittest import mock

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DYNAMIC_LAYER_TYPE_MAPPING, DynamicLayer

from benchmarks.gpu_generation import TINY
from inference import GenerationRequest, continuous
from inference.kv_cache import SPARE_TOKENS, RoomyLayer, left_padded, roomy_cache
from inference.prefix_cache import PrefixCache

VOCAB = TINY["vocab_size"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**TINY)).eval()


def decode_logits(model, cache, prompt, steps):
    """Prefill ``prompt`` into ``cache``, then feed ``steps`` tokens one at a time: the logits of every step, and the
    storage each step's first-layer keys were in."""
    logits, storages = [], []
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        out = model(input_ids=ids, cache=cache, use_cache=True)
        for step in range(steps):
            logits.append(out.logits[:, -1])
            storages.append(cache.layers[0].keys.untyped_storage().data_ptr())
            out = model(input_ids=torch.tensor([[(7 * step) % VOCAB]]), cache=cache, use_cache=True)
    return logits, storages


def test_decoding_into_spare_room_gives_a_dynamic_caches_logits_and_copies_only_when_the_room_runs_out(model):
    prompt = list(range(3, 43))
    steps = SPARE_TOKENS + 20
    expected, _ = decode_logits(model, DynamicCache(config=model.config), prompt, steps)
    got, storages = decode_logits(model, roomy_cache(model.config), prompt, steps)
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want, rtol=0, atol=1e-6)
    # The prefill's 40 positions are copied into room for 109 (40 + 40 // 8 + 64); the 70th step needs more.
    # Concatenating, as a DynamicLayer does, would copy into new storage at every step.
    changes = sum(1 for before, after in zip(storages, storages[1:]) if before != after)
    assert changes == 1


def test_a_prefix_cache_lookup_goes_on_from_the_entry_and_never_writes_into_it(model):
    """The prefix cache hands out its entries' states uncopied (``cache_holding``): a row extending one copies it into
    room at its first step, so the entry stays as it was for the next row, and the logits are those of the prefix
    computed afresh."""
    prompt, shared = list(range(3, 43)), 30
    computed = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([prompt]), cache=computed, use_cache=True)
    prefixes = PrefixCache(max_bytes=2**30)
    prefixes.store(prompt, [(layer.keys, layer.values) for layer in computed.layers])
    (entry,) = prefixes.entries.values()
    before = [(keys.clone(), values.clone()) for keys, values in entry.layers]
    length, cache = prefixes.longest(prompt[:shared] + [99, 98], most=shared + 1)
    assert length == shared and all(type(layer) is RoomyLayer for layer in cache.layers)
    assert cache.layers[0].keys.data_ptr() == entry.layers[0][0].data_ptr()  # not copied by the lookup
    afresh = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=torch.tensor([prompt[:shared]]), cache=afresh, use_cache=True)
        want = model(input_ids=torch.tensor([[5, 6, 7]]), cache=afresh, use_cache=True).logits
        have = model(input_ids=torch.tensor([[5, 6, 7]]), cache=cache, use_cache=True).logits
    torch.testing.assert_close(have, want, rtol=0, atol=1e-5)
    # Positions 30-32 of the entry hold what the prompt's tokens 30-32 gave, not the row's 5, 6, 7.
    for (keys, values), (keys_before, values_before) in zip(entry.layers, before, strict=True):
        assert torch.equal(keys, keys_before) and torch.equal(values, values_before)
    assert all(layer.room > 0 for layer in cache.layers)  # the next steps write in place


def test_left_padded_stacks_parts_right_aligned_after_zeros_whatever_memory_it_is_given():
    def uninitialised(self, size, **options):  # what new_empty may return: old memory, here made NaN
        return torch.full(size, float("nan"), dtype=self.dtype, device=self.device)

    short = torch.full((1, 2, 3, 4), 1.0)
    long = torch.full((2, 2, 5, 4), 2.0)
    with mock.patch.object(torch.Tensor, "new_empty", uninitialised):
        buffer = left_padded([short, long], length=5, room=7)
    assert buffer.shape == (3, 2, 12, 4)
    filled = buffer[:, :, :5]
    assert torch.equal(filled[:1, :, :2], torch.zeros(1, 2, 2, 4))  # the short part's left padding
    assert torch.equal(filled[:1, :, 2:], short)
    assert torch.equal(filled[1:], long)


def test_keys_and_values_assigned_one_after_the_other_are_each_what_was_assigned():
    # transformers' own methods (crop, batch_select_indices, reorder_cache) assign keys, then values: while keys are
    # new, values are still the old ones.
    layer = RoomyLayer()
    keys, values = torch.randn(3, 2, 10, 4), torch.randn(3, 2, 10, 4)
    layer.update(keys, values)
    layer.update(torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4))  # now in a buffer with room
    assert layer.room > 0
    kept = torch.tensor([0, 2])
    expected_values = layer.values[kept, :, 4:]
    layer.keys = layer.keys[kept, :, 4:]
    layer.values = layer.values[kept, :, 4:]
    assert torch.equal(layer.values, expected_values)
    assert layer.keys.shape == layer.values.shape == (2, 2, 7, 4)
    assert layer.get_seq_length() == 7


def test_transformers_own_caches_stay_plain_dynamic_layers(model):
    assert DYNAMIC_LAYER_TYPE_MAPPING["full_attention"] is DynamicLayer
    assert all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)
    assert continuous.supports(model)


def test_the_batch_decodes_into_spare_room_after_rows_join_it_and_after_a_row_leaves(model):
    batcher = continuous.ContinuousBatcher(
        model, "cpu", stop_ids={0}, pad_token_id=0, decode=lambda ids: " ".join(map(str, ids)), max_rows=4
    )

    def request(tokens):
        return GenerationRequest(
            messages=[{"role": "user", "content": "-"}],
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            temperature=0.0,
            top_p=1.0,
        )

    def written_in_place(layer, steps):
        storage = layer.keys.untyped_storage().data_ptr()
        for _ in range(steps):
            assert not batcher.step()
            if layer.keys.untyped_storage().data_ptr() != storage:
                return False
        return True

    batcher.submit("a", request(12), list(range(3, 30)))
    batcher.step()  # prefilled, into buffers with room
    batcher.step()  # a decoding step (one follows every prefill)
    batcher.submit("b", request(40), list(range(5, 60)))  # longer: joining pads the running row on the left
    batcher.step()
    assert [row.key for row in batcher.rows] == ["a", "b"]
    layer = batcher.cache.layers[0]
    assert isinstance(layer, RoomyLayer) and layer.room >= SPARE_TOKENS
    assert written_in_place(layer, 5)
    finished = {}
    while not finished:
        finished.update(batcher.step())
    assert list(finished) == ["a"] and [row.key for row in batcher.rows] == ["b"]
    assert layer.room >= SPARE_TOKENS  # the row left, and what stays was copied once into room
    assert written_in_place(layer, 5)
    # The texts, with rows joining and leaving, against generate()'s: tests/generation/test_continuous_batching.py


def test_out_of_memory_while_making_room_leaves_keys_and_values_in_step():
    layer = RoomyLayer()
    layer.lazy_initialization(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))  # as Cache.early_initialization does
    layer.update(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4))
    made = []

    def failing_on_the_values(parts, length, room=0):
        made.append(length)
        if len(made) == 2:
            raise torch.OutOfMemoryError("no room for the values")
        return left_padded(parts, length, room)

    more = layer.room + 1
    with mock.patch("inference.kv_cache.left_padded", failing_on_the_values):
        with pytest.raises(torch.OutOfMemoryError):
            layer.update(torch.randn(1, 2, more, 4), torch.randn(1, 2, more, 4))
    assert layer.keys.shape == layer.values.shape == (1, 2, 3, 4)
    # The same tokens again, memory permitting: had the keys' bigger buffer been kept, they would fit there and not
    # in the values' buffer.
    keys, values = torch.randn(1, 2, more, 4), torch.randn(1, 2, more, 4)
    layer.update(keys, values)
    assert torch.equal(layer.keys[:, :, 3:], keys) and torch.equal(layer.values[:, :, 3:], values)
