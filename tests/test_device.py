"""``device=`` for torch models (xai.devices): the CPU gives the values of no ``device=`` bit
for bit, the user's module ends where it began (same tensors, same storage), a device this
machine lacks is refused before any model call, and on a CUDA GPU (when there is one) the
values match the CPU's up to float rounding, returned as numpy on the CPU."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import xai
import xai.metrics.curves  # registers deletion
from xai import planner, registry
from xai.devices import available_devices, check_device, placed
from xai.errors import InputError, ModelError, OptionError
from xai.models import as_model

CPU_DEVICES = ["cpu", torch.device("cpu")]
CUDA = torch.cuda.is_available()


class Counting(torch.nn.Module):
    """Wraps a module; counts its forward calls and records the devices of its inputs."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.input_devices: set[str] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.input_devices.add(str(x.device))
        return self.inner(x)


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def cnn(seed: int = 0) -> torch.nn.Module:
    """A small CNN on (1, 8, 8) images, with a BatchNorm (buffers) in eval mode."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.1, 0.1)
        net[1].running_var.uniform_(0.5, 1.5)
    return net.eval()


RNG = np.random.default_rng(0)
XT = RNG.normal(size=(5, 6)).astype(np.float32)
BT = RNG.normal(size=(30, 6)).astype(np.float32)
XI = RNG.normal(size=(3, 1, 8, 8)).astype(np.float32)
XI_BG = RNG.normal(size=(10, 1, 8, 8)).astype(np.float32)


def state_of(module: torch.nn.Module) -> list[tuple]:
    """Every parameter and buffer: the object, its device, its storage and its values."""
    out = []
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        out.append((name, id(t), t.device, t.data_ptr(), t.detach().clone(),
                    t.grad if isinstance(t, torch.nn.Parameter) else None))
    return out


def assert_same_state(before: list[tuple], module: torch.nn.Module) -> None:
    after = state_of(module)
    assert [b[:4] for b in before] == [a[:4] for a in after]
    for b, a in zip(before, after):
        assert torch.equal(b[4], a[4]), b[0]
        assert b[5] is a[5], b[0]


# ---- the CPU: the same computation as no device= ---------------------------------------------

CASES = [("shap", mlp, XT, {"background": BT}),
         ("kernelshap", mlp, XT, {"background": BT, "budget": 2000}),
         ("occlusion", mlp, XT, {"background": BT}),
         ("occlusion", cnn, XI, {"features": 4}),
         ("rise", cnn, XI, {"budget": 200}),
         ("kernelshap", cnn, XI, {"features": 4, "background": XI_BG, "budget": 1000})]
CASE_IDS = [f"{c[0]}-{c[1].__name__}" for c in CASES]


def explain(model, X, method, device, **options):
    if device is not None:
        options["device"] = device
    return xai.explain(model, X, method, seed=0, progress=False, **options)


@pytest.mark.parametrize("method,make,X,options", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("device", CPU_DEVICES, ids=str)
def test_cpu_device_gives_the_values_of_no_device(method, make, X, options, device):
    net = make()
    ref = explain(net, X, method, None, **options)
    before = state_of(net)
    got = explain(net, X, method, device, **options)
    np.testing.assert_array_equal(got.values, ref.values)
    np.testing.assert_array_equal(got.base_values, ref.base_values)
    assert got.evaluations == ref.evaluations
    assert got.options["device"] == "cpu"
    assert_same_state(before, net)


def test_the_training_flags_are_kept_with_a_device():
    net = cnn()
    explain(net, XI, "occlusion", "cpu", features=4)
    assert not any(m.training for m in net.modules())
    net.train()
    explain(net, XI, "occlusion", "cpu", features=4)
    assert all(m.training for m in net.modules())


@pytest.mark.parametrize("device", CPU_DEVICES, ids=str)
def test_cpu_device_gives_the_deletion_scores_of_no_device(device):
    net = cnn()
    e = explain(net, XI, "occlusion", None, features=4)
    deletion = registry.get("metric", "deletion")()
    ref = deletion(net, XI, e)
    before = state_of(net)
    got = deletion(net, XI, e, device=device)
    np.testing.assert_array_equal(got.per_sample, ref.per_sample)
    np.testing.assert_array_equal(got.curves, ref.curves)
    assert got.settings["device"] == "cpu"
    assert_same_state(before, net)


@pytest.mark.parametrize("method", ["captum.integrated-gradients", "captum.occlusion"])
@pytest.mark.parametrize("device", CPU_DEVICES, ids=str)
def test_cpu_device_gives_the_values_of_no_device_through_captum(method, device):
    pytest.importorskip("captum")
    net = cnn()
    ref = explain(net, XI, method, None)
    before = state_of(net)
    got = explain(net, XI, method, device)
    np.testing.assert_array_equal(got.values, ref.values)
    assert_same_state(before, net)


@pytest.mark.parametrize("method", ["shap.kernel", "lime.tabular"])
def test_cpu_device_reaches_the_shap_and_lime_backends(method):
    pytest.importorskip(method.split(".")[0])
    net = Counting(mlp())
    e = explain(net, XT[:2], method, "cpu", background=BT)
    assert e.values.shape == (2, 6) and net.calls > 0 and net.input_devices == {"cpu"}


def test_synthetic_inputs_are_built_on_the_chosen_device():
    net = Counting(mlp())
    explain(net, XT, "shap", "cpu", background=BT)
    assert net.input_devices == {"cpu"}


def test_device_with_the_explainer_class_and_an_adapter():
    net = mlp()
    ref = xai.Explainer.from_preset("shap", background=BT, seed=0, progress=False).explain(
        net, XT).values
    got = xai.Explainer.from_preset("shap", background=BT, seed=0, progress=False,
                                    device="cpu").explain(as_model(net, device="cpu"), XT)
    np.testing.assert_array_equal(got.values, ref)


# ---- refusals, before any model call ----------------------------------------------------------

def fake_gpus(monkeypatch, count: int) -> None:
    """This machine seen as one with ``count`` CUDA GPUs (for the checks of names only)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", 3, 1.5, ["cpu"], "meta", "cuda:99"])
def test_a_device_this_machine_lacks_is_refused_before_any_model_call(bad):
    net = Counting(mlp())
    with pytest.raises(OptionError, match="pass one of") as err:
        explain(net, XT, "shap", bad, background=BT)
    assert net.calls == 0
    assert isinstance(err.value, InputError)
    assert str(available_devices()) in str(err.value)


@pytest.mark.skipif(CUDA, reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_before_any_model_call():
    net = Counting(mlp())
    for entry in (lambda: explain(net, XT, "shap", "cuda", background=BT),
                  lambda: registry.get("metric", "deletion")()(net, XT[:3],
                                                             np.ones((3, 6)), device="cuda"),
                  lambda: xai.Explainer.from_preset("occlusion", background=BT,
                                                    device="cuda:0").explain(net, XT)):
        with pytest.raises(OptionError, match="CUDA GPU, but") as err:
            entry()
        assert "'cpu'" in str(err.value)
    assert net.calls == 0


def test_mps_where_it_is_missing_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(OptionError, match="Metal GPU"):
        check_device("device", "mps")


def test_a_gpu_index_past_the_last_gpu_names_the_gpus_there_are(monkeypatch):
    fake_gpus(monkeypatch, 1)
    assert check_device("device", "cuda") == "cuda:0"
    assert check_device("device", torch.device("cuda", 0)) == "cuda:0"
    with pytest.raises(OptionError, match=r"GPU 7, but this machine has 1 .*'cuda:0'"):
        check_device("device", "cuda:7")


def test_a_gpu_device_with_a_model_that_is_not_a_torch_module_is_refused(monkeypatch):
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression().fit(BT, (BT[:, 0] > 0).astype(int))
    ref = explain(lr, XT, "shap", None, background=BT).values
    np.testing.assert_array_equal(explain(lr, XT, "shap", "cpu", background=BT).values, ref)
    fake_gpus(monkeypatch, 1)
    calls = []

    def f(z):
        calls.append(len(z))
        return z.sum(1)
    for model, what in ((lr, "LogisticRegression"), (f, "function")):
        with pytest.raises(OptionError, match=f"moves a torch module, but the model is a {what}"):
            explain(model, XT, "shap", "cuda", background=BT)
    assert calls == []


def test_an_adapter_on_another_device_is_refused(monkeypatch):
    adapter = as_model(mlp())
    fake_gpus(monkeypatch, 1)
    with pytest.raises(OptionError, match="adapter runs on cpu"):
        as_model(adapter, device="cuda")


def test_unknown_device_options_are_refused_by_the_metrics_and_backends():
    with pytest.raises(OptionError):
        registry.get("metric", "deletion")(device="gpu")
    pytest.importorskip("captum")
    with pytest.raises(OptionError):
        registry.get("explainer", "captum.saliency")(device="gpu")


# ---- moving a module and putting it back ------------------------------------------------------

class Tied(torch.nn.Module):
    """Two layers sharing one weight, a BatchNorm's buffers, and a parameter with a gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)
        self.b.weight = self.a.weight
        self.bn = torch.nn.BatchNorm1d(4)

    def forward(self, x):
        return self.b(self.bn(self.a(x)))


def test_placed_moves_the_module_and_puts_back_the_same_tensors():
    net = Tied()
    net(torch.ones(2, 4)).sum().backward()
    before = state_of(net)
    meta = torch.device("meta")  # a second device every machine has
    with placed(net, meta):
        assert all(t.device == meta for t in [*net.parameters(), *net.buffers()])
        assert net.a.weight.grad.device == meta
        with placed(net, meta):  # nested: one move
            pass
        assert net.a.weight.device == meta
    assert_same_state(before, net)
    assert net.b.weight is net.a.weight
    assert net.a.weight.grad.device.type == "cpu"


def test_placed_puts_the_module_back_after_an_error():
    net = Tied()
    before = state_of(net)
    with pytest.raises(RuntimeError, match="boom"), placed(net, torch.device("meta")):
        raise RuntimeError("boom")
    assert_same_state(before, net)


def test_a_module_held_on_one_device_is_refused_on_another():
    net = mlp()
    with placed(net, torch.device("cpu")), pytest.raises(
            ModelError, match="running on cpu for another explanation"), \
            placed(net, torch.device("meta")):
        pass
    with placed(net, torch.device("meta")):
        pass  # free again
    assert net[0].weight.device.type == "cpu"


def test_a_call_runs_the_module_on_the_device_and_puts_it_back_after_an_error(monkeypatch):
    # the meta device (shapes without values) stands in for a second device: the module and
    # its inputs go there, the first output cannot be read, and the module is back after it
    from xai.external import ExternalExplainer

    class Probe(ExternalExplainer):
        name = "probe"

        def attribute(self, ctx):  # pragma: no cover - the first model call fails
            return {"values": np.zeros(ctx.X.shape)}

    def allow_meta(name, value):
        return None if value is None else str(torch.device(value))
    monkeypatch.setitem(xai.inputs.OPTION_RULES, "device", allow_meta)
    monkeypatch.setattr(xai.models, "check_device", allow_meta)
    net = Counting(mlp())
    before = state_of(net)
    with pytest.raises(ModelError, match="cannot be read as numbers"):
        Probe(device="meta").explain(net, XT)
    assert net.input_devices == {"meta"}
    assert_same_state(before, net)


def test_a_failed_move_leaves_the_module_where_it_was(monkeypatch):
    net = Tied()
    before = state_of(net)

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(net, "to", fail)
    with pytest.raises(ModelError, match="back where it was"), placed(net, torch.device("meta")):
        pass
    assert_same_state(before, net)


# ---- call sizes --------------------------------------------------------------------------------

def test_a_module_on_a_gpu_gets_larger_calls_and_the_cpu_sizes_are_unchanged():
    lin = torch.nn.Linear(64, 3)
    cpu = SimpleNamespace(module=lin, device=torch.device("cpu"), batch_size=None)
    gpu = SimpleNamespace(module=lin, device=torch.device("cuda", 0), batch_size=None)
    other = SimpleNamespace(device=torch.device("cpu"), batch_size=None)  # a function
    row, per_row, cap = 64 * 4, 1200, 256 * 2**20
    assert planner.call_rows(cpu, row) == min(planner.CPU_MAX_ROWS, planner.CPU_CHUNK_BYTES // row)
    assert planner.block_rows(cpu, row, per_row, cap) == planner.CPU_BLOCK_BYTES // row
    assert planner.block_rows(other, row, per_row, cap) == planner.DEFAULT_MAX_BATCH
    assert planner.call_rows(gpu, row) is None  # one call per block
    assert planner.block_rows(gpu, row, per_row, cap) == planner.ACCELERATOR_MAX_ROWS
    assert planner.block_rows(gpu, row, per_row, 2**20) == 2**20 // per_row  # the cap wins
    assert planner.block_rows(gpu, row, per_row, cap, batch_size=100) == 100  # the user's too


# ---- a CUDA GPU, when this machine has one -----------------------------------------------------

@pytest.fixture
def exact_float32():
    """No TF32 in matrix products and convolutions, so the GPU computes in float32 as the CPU
    does (values then differ by rounding only)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def assert_close(got, ref):
    scale = float(np.abs(ref).max()) or 1.0
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * scale)


GPU_CASES = [("shap", mlp, XT, {"background": BT}),
             ("kernelshap", mlp, XT, {"background": BT, "budget": 2000}),
             ("occlusion", cnn, XI, {"features": 4}),
             ("rise", cnn, XI, {"budget": 200}),
             ("captum.integrated-gradients", cnn, XI, {})]


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("method,make,X,options", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_on_a_cuda_gpu_values_match_the_cpu(method, make, X, options, exact_float32):
    if method.startswith("captum"):
        pytest.importorskip("captum")
    net = Counting(make())
    ref = explain(net, X, method, None, **options)
    before = state_of(net)
    got = explain(net, X, method, "cuda", **options)
    assert isinstance(got.values, np.ndarray) and got.options["device"].startswith("cuda")
    assert_close(got.values, ref.values)
    assert_same_state(before, net)  # back on the CPU, the same tensors
    assert any(d.startswith("cuda") for d in net.input_devices)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_on_a_cuda_gpu_deletion_matches_the_cpu(exact_float32):
    net = cnn()
    e = explain(net, XI, "occlusion", None, features=4)
    deletion = registry.get("metric", "deletion")()
    ref = deletion(net, XI, e)
    got = deletion(net, XI, e, device="cuda")
    assert_close(got.per_sample, ref.per_sample)
    assert net[0].weight.device.type == "cpu"


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_a_module_on_a_gpu_runs_on_the_cpu_with_device_cpu_and_goes_back(exact_float32):
    net = Counting(mlp()).cuda()
    before = state_of(net)
    on_gpu = explain(net, XT, "shap", None, background=BT)
    on_cpu = explain(net, XT, "shap", "cpu", background=BT)
    assert "cpu" in net.input_devices
    assert_close(on_cpu.values, on_gpu.values)
    assert_same_state(before, net)
