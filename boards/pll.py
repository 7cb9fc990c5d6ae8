"""Clock generation for the board tops: iCE40 ``SB_PLL40_PAD`` and ECP5 ``EHXPLLL``.

The divider searches follow the devices' documented ranges (phase detector and VCO
frequencies); the closest frequency not above the request is chosen, so a design is never
clocked faster than it was timed for. The output needs no clock constraint of its own:
nextpnr derives it from the board oscillator's constraint and the dividers. The caller
defines the ``sync`` domain; the PLL drives its clock, and holds it in reset until it locks.
"""

from dataclasses import dataclass

from amaranth import ClockSignal, Elaboratable, Module, Signal
from amaranth.hdl import Instance
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["PLLParams", "ice40_pll", "ecp5_pll", "ecp5_phase", "ICE40PLL", "ECP5PLL"]


@dataclass(frozen=True)
class PLLParams:
    """Divider settings of a PLL and the output frequency they give.

    Attributes
    ----------
    f_in, f_out : float
        Reference and output frequency in Hz.
    params : dict
        Instance parameters (without the ``p_`` prefix).
    """

    f_in: float
    f_out: float
    params: dict


def _ice40_filter_range(f_pfd):
    # Loop filter setting per phase-detector band (iCE40 sysCLOCK PLL guide).
    for limit, value in [(17e6, 1), (26e6, 2), (44e6, 3), (66e6, 4), (101e6, 5)]:
        if f_pfd < limit:
            return value
    return 6


def ice40_pll(f_in, f_req):
    """Best ``SB_PLL40`` dividers (simple feedback) for ``f_req`` from ``f_in``, both in Hz."""
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if f_out <= f_req * (1 + 1e-9) and (best is None or f_out > best.f_out):
                    best = PLLParams(f_in, f_out, {
                        "DIVR": divr, "DIVF": divf, "DIVQ": divq,
                        "FILTER_RANGE": _ice40_filter_range(f_pfd)})
    if best is None:
        raise ValueError(f"no iCE40 PLL setting reaches {f_req / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    return best


def ecp5_pll(f_in, f_req):
    """Best ``EHXPLLL`` dividers (CLKOP feedback) for ``f_req`` from ``f_in``, both in Hz."""
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            if f_out > f_req * (1 + 1e-9) or not 3.125e6 <= f_out <= 400e6:
                continue
            for clkop_div in range(1, 129):
                if 400e6 <= f_out * clkop_div <= 800e6:
                    break
            else:
                continue
            if best is None or f_out > best.f_out:
                best = PLLParams(f_in, f_out, {
                    "CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
                    "CLKOP_CPHASE": clkop_div // 2, "CLKOP_FPHASE": 0})
    if best is None:
        raise ValueError(f"no ECP5 PLL setting reaches {f_req / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    return best


class _PLLBase(Elaboratable):
    def __init__(self, params):
        if not isinstance(params, PLLParams):
            raise TypeError(f"params must be a PLLParams, not {params!r}")
        self.params = params
        self.locked = Signal()

    def _domain(self, m, clk, lock):
        unlocked = Signal()
        m.d.comb += [ClockSignal("sync").eq(clk), self.locked.eq(lock), unlocked.eq(~lock)]
        m.submodules.rst_sync = ResetSynchronizer(unlocked, domain="sync")


class ICE40PLL(_PLLBase):
    """``sync`` domain from an ``SB_PLL40_PAD`` fed by the board's clock pin.

    Parameters
    ----------
    params : PLLParams
        From :func:`ice40_pll`.
    pin : IOPort
        The clock input pin (``platform.request(name, dir="-").io``): the PAD variant takes
        the package pin itself, the only way to reach the PLL from the iCEBreaker's oscillator.
    """

    def __init__(self, params, pin):
        self._pin = pin
        super().__init__(params)

    def elaborate(self, platform):
        m = Module()
        clk, lock = Signal(name="clk_sync"), Signal(name="pll_lock")
        p = self.params.params
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
            p_FILTER_RANGE=p["FILTER_RANGE"],
            i_PACKAGEPIN=self._pin, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk, o_LOCK=lock,
        )
        self._domain(m, clk, lock)
        return m


def ecp5_phase(params, degrees):
    """``CLKOS`` settings of an ``EHXPLLL`` set up by ``params`` (:func:`ecp5_pll`) for a copy of
    ``CLKOP`` lagging it by ``degrees``: the same divider, the phase in eighths of a VCO cycle
    (coarse ``CPHASE`` in whole VCO cycles above ``CLKOP``'s, fine ``FPHASE`` in eighths)."""
    div = params.params["CLKOP_DIV"]
    eighths = round(degrees * div / 45)
    return {"CLKOS_DIV": div, "CLKOS_CPHASE": params.params["CLKOP_CPHASE"] + (eighths >> 3),
            "CLKOS_FPHASE": eighths & 7}


class ECP5PLL(_PLLBase):
    """``sync`` domain from an ``EHXPLLL`` fed by the board's clock.

    Parameters
    ----------
    params : PLLParams
        From :func:`ecp5_pll`.
    clk_in : Signal
        The reference clock (the board oscillator's input buffer).
    lagging : tuple of (str, float), optional
        ``(domain, degrees)``: drive that domain's clock from ``CLKOS``, a copy of the ``sync``
        clock lagging it by ``degrees`` (the SDRAM clock, :mod:`.sdram`). The caller defines
        the domain (reset-less).
    """

    def __init__(self, params, clk_in, *, lagging=None):
        self._clk_in = clk_in
        self._lagging = lagging
        super().__init__(params)

    def elaborate(self, platform):
        m = Module()
        clk, lock = Signal(name="clk_sync"), Signal(name="pll_lock")
        p = self.params.params
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.params.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.params.f_out / 1e6:g}",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_FEEDBK_PATH="CLKOP",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"], p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=p["CLKOP_FPHASE"],
            i_CLKI=self._clk_in, i_CLKFB=clk, i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk, o_LOCK=lock,
            **self._secondary(),
        )
        self._domain(m, clk, lock)
        return m

    def _secondary(self):
        if self._lagging is None:
            return {}
        domain, degrees = self._lagging
        phase = {f"p_{k}": v for k, v in ecp5_phase(self.params, degrees).items()}
        return {**phase, "p_CLKOS_ENABLE": "ENABLED", "p_OUTDIVIDER_MUXB": "DIVB",
                "a_FREQUENCY_PIN_CLKOS": f"{self.params.f_out / 1e6:g}", "i_ENCLKOS": 0,
                "o_CLKOS": ClockSignal(domain)}
