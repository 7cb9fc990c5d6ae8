"""Every layer kind the IR knows has one handler in every pass (docs/extending.md)."""

import pytest

from sdtforge.errors import UserError
from sdtforge.registry import Registry


def _passes():
    from sdtforge.hdl.layer_compilers import COMPILERS
    from sdtforge.quantize.quantizer import QUANTIZERS
    from sdtforge.sim.cycles import CYCLES
    from sdtforge.sim.golden import GOLDEN_OPS
    return {"quantize": QUANTIZERS, "golden": GOLDEN_OPS, "compile": COMPILERS,
            "cycles": CYCLES}


def test_every_ir_kind_has_a_handler_in_every_pass():
    from sdtforge.quantize import ir
    kinds = set(ir.LAYER_KINDS)
    assert len(kinds) == 10
    for name, registry in _passes().items():
        assert set(registry) == kinds, name


def test_every_kind_of_the_config_layout_is_registered():
    from sdtforge.quantize import ir, synthetic
    layouts = [ir.expected_layout(synthetic.tiny_config(encoding=e, dvs=dvs))
               for e in ir.ENCODINGS for dvs in (False, True)]
    assert {kind for layout in layouts for kind, *_ in layout} == set(ir.LAYER_KINDS)


def test_ir_records_declare_their_dataflow_and_golden_memory():
    from sdtforge.quantize import ir, synthetic
    config = synthetic.tiny_config()
    geo = ir.Geometry.of(config)
    for kind, name, inp, outp, kw in ir.expected_layout(config):
        cls = ir.LAYER_KINDS[kind]
        reads, writes = cls.flow(dict(kw, name=name, input=inp, output=outp), geo)
        assert inp in reads and outp in writes, name
        kept, work = cls.golden_bytes(kw, geo)
        assert kept >= 0 and work > 0, name


def test_registry_refuses_a_second_handler_and_names_an_unknown_kind():
    reg = Registry("example")

    @reg.register("a", "b")
    def handler():
        return 1

    assert reg["a"] is handler and reg.kinds() == ("a", "b") and "b" in reg and len(reg) == 2
    with pytest.raises(ValueError, match="'a' is registered twice"):
        reg.register("a")(lambda: None)
    with pytest.raises(UserError, match=r"example pass has no handler for layer kind 'c' "
                                        r"\(it knows a, b\)"):
        reg["c"]
    with pytest.raises(TypeError):
        reg.register()
