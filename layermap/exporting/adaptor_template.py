# The template of the adaptor module `layermap export --format textbrewer` writes beside the matches
# (layermap.exporting.textbrewer.render_adaptor; shipped as package data).  It is a working adaptor as it
# stands (Hugging Face numbering, head averaging decided by prepare()); the renderer drops these comment lines,
# fills the {PLACEHOLDERS} of the docstring and sets ATTENTION_INDEX, AVERAGE_HEADS and the attention tuple.
"""TextBrewer adaptors for the layer mapping {MAPPING} that layermap exported (teacher {TEACHER}).

Numbering of the matches beside this file ({INDEX}): {NUMBERING}.

    import importlib.util
    spec = importlib.util.spec_from_file_location("layermap_adaptor", "THIS_FILE.adaptor.py")
    adaptors = importlib.util.module_from_spec(spec); spec.loader.exec_module(adaptors)
    adaptors.prepare(teacher); adaptors.prepare(student)   # hidden states + (eager) attentions in every output
    distiller = GeneralDistiller(train_config, DistillationConfig.from_json_file("THIS_FILE.json"),
                                 teacher, student, adaptors.adaptor_T, adaptors.adaptor_S)

adaptor_T / adaptor_S pass Hugging Face's outputs.attentions: probabilities after the softmax.  layermap's
fitness distilled TinyBERT's attention scores before the softmax; for that target use
adaptors.score_adaptor(teacher) / adaptors.score_adaptor(student) instead (hooks on every layer's query and key).
Batches are dicts of the models' keyword arguments (input_ids, attention_mask, ...); the attention_mask is
passed on as TextBrewer's inputs_mask, so padding is left out of every loss.  Give it: without inputs_mask
TextBrewer's attention_mse sets every value <= -0.001 to 0 (it expects scores with -10000 on padding), which
would also zero the negative pre-softmax scores of score_adaptor.  score_adaptor's hooks stay on the model.
When teacher and student have different head counts, every attention map is averaged over its heads, (B, 1, L, L),
as layermap's fitness compared them (TextBrewer's attention_mse needs equal shapes).
"""

import torch

ATTENTION_INDEX = "hf"
AVERAGE_HEADS = None          # True / False from the run's head counts; None: prepare() decides from the models
_HEADS = set()


def prepare(model):
    """Make a Hugging Face encoder return every hidden state and (eager) attention probabilities; notes its head
    count (two models of different head counts: attention is averaged over heads)."""
    _HEADS.add(model.config.num_attention_heads)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")      # sdpa/flash attention return no attention probabilities
    else:
        model.config._attn_implementation = "eager"
    model.config.output_hidden_states = True
    model.config.output_attentions = True
    return model


def _features(batch, outputs, attentions):
    if outputs.hidden_states is None or attentions is None:
        raise ValueError("the model returned no hidden states or attentions: call prepare(model) on it first")
    features = {"hidden": tuple(outputs.hidden_states), "attention": tuple(attentions)}
    if AVERAGE_HEADS or (AVERAGE_HEADS is None and len(_HEADS) > 1):
        features["attention"] = tuple(None if a is None else a.mean(dim=1, keepdim=True) for a in features["attention"])
    if isinstance(batch, dict) and batch.get("attention_mask") is not None:
        features["inputs_mask"] = batch["attention_mask"]
    return features


def adaptor_T(batch, outputs):
    """The teacher's features: hidden states and attention probabilities (outputs.attentions)."""
    return _features(batch, outputs, outputs.attentions)


adaptor_S = adaptor_T       # the student's features are read the same way


def score_adaptor(model):
    """An adaptor for ``model`` whose 'attention' is the pre-softmax scores Q K^T / sqrt(d_head) of every layer
    (what layermap's fitness distilled), recorded by forward hooks on each layer's query and key."""
    qk = {}
    layers = model.base_model.encoder.layer
    heads = model.config.num_attention_heads

    def hook(index, which):
        def record(_module, _inputs, output):
            qk.setdefault(index, {})[which] = output
        return record

    for index, layer in enumerate(layers):
        layer.attention.self.query.register_forward_hook(hook(index, "q"))
        layer.attention.self.key.register_forward_hook(hook(index, "k"))

    def scores(index):
        q, k = qk[index]["q"], qk[index]["k"]
        b, n, d = q.shape
        q = q.view(b, n, heads, d // heads).transpose(1, 2)
        k = k.view(b, n, heads, d // heads).transpose(1, 2)
        return torch.matmul(q, k.transpose(-1, -2)) / (d // heads) ** 0.5

    def adaptor(batch, outputs):
        return _features(batch, outputs, [scores(i) for i in range(len(layers))])

    return adaptor
