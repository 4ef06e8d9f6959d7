"""Smoke tests of the figure helpers: draw into Agg figures, check what was drawn."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import infoclust as ic  # noqa: E402
from infoclust import plot as icp  # noqa: E402


@pytest.fixture(autouse=True)
def _style_and_close():
    with matplotlib.rc_context():
        icp.use_style()  # the style turns the grid on: the helpers must turn it off
        yield
    plt.close("all")


def _bare(ax):
    """No ticks, hence no tick labels and no grid lines."""
    ax.figure.canvas.draw()
    return (
        len(ax.get_xticks()) == 0
        and len(ax.get_yticks()) == 0
        and not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())
    )


def test_import_infoclust_leaves_matplotlib_alone():
    code = "import sys, infoclust; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_use_style_turns_the_grid_on_for_curves():
    assert matplotlib.rcParams["axes.grid"] and matplotlib.rcParams["image.cmap"] == icp.IMAGE_CMAP
    _, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.figure.canvas.draw()
    assert any(line.get_visible() for line in ax.get_xgridlines())


def test_ledger_start_sets_the_style(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCLUST_RESULTS_DIR", str(tmp_path))
    matplotlib.rcParams["axes.grid"] = False
    ic.Ledger.start("99_plot", profile="smoke", seed=0, device="cpu")
    assert matplotlib.rcParams["axes.grid"]


def test_image_grid_batch_pins_the_range():
    x = torch.rand(5, 1, 6, 6) * 0.5  # autoscaling would stretch 0..0.5 to full black
    axes = icp.image_grid(x, titles=[f"t{i}" for i in range(5)])
    assert axes.shape == (1, 5)
    for i, ax in enumerate(axes.flat):
        (im,) = ax.images
        assert (im.norm.vmin, im.norm.vmax) == (0.0, 1.0)
        assert im.get_cmap().name == icp.IMAGE_CMAP
        np.testing.assert_allclose(im.get_array(), x[i, 0].numpy(), rtol=1e-6)
        assert ax.get_title() == f"t{i}"
        assert _bare(ax)


def test_image_grid_rows_wrap_labels_and_blanks():
    rows = [np.zeros((3, 1, 4, 4)), [torch.ones(4, 4), torch.ones(1, 4, 4)], []]
    axes = icp.image_grid(rows, titles=[None, ["a", "b"], None], row_labels=["x", "g x", "empty"], ncols=4)
    assert axes.shape == (3, 4)
    assert [len(ax.images) for ax in axes.flat] == [1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert [ax.get_title() for ax in axes[1, :2]] == ["a", "b"]
    flat = icp.image_grid(rows[:2], titles=["0", "1", "2", "a", "b"])  # flat titles: reading order
    assert [ax.get_title() for ax in flat[1]] == ["a", "b", ""]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["x", "g x", "empty"]
    assert all(_bare(ax) for ax in axes.flat)
    wrapped = icp.image_grid(torch.rand(7, 1, 4, 4), ncols=3)
    assert wrapped.shape == (3, 3) and sum(len(ax.images) for ax in wrapped.flat) == 7


def test_image_grid_into_given_axes_and_colour():
    _, axes = plt.subplots(3, 4)
    out = icp.image_grid([torch.rand(4, 3, 5, 5), torch.rand(2, 3, 5, 5, requires_grad=True)], axes=axes[:2])
    assert out.shape == (2, 4) and len(axes[2, 0].images) == 0
    assert out[0, 0].images[0].get_array().shape == (5, 5, 3)
    with pytest.raises(ic.ParameterError, match="^axes"):
        icp.image_grid(torch.rand(5, 1, 4, 4), axes=axes[:1])


def test_image_grid_rejects_bad_input():
    with pytest.raises(ic.ParameterError, match="^images"):
        icp.image_grid(torch.rand(4, 4, 4))
    with pytest.raises(ic.ParameterError, match="^titles"):
        icp.image_grid(torch.rand(3, 1, 4, 4), titles=["a"])
    with pytest.raises(ic.ParameterError, match="^row_labels"):
        icp.image_grid([torch.rand(3, 1, 4, 4)], row_labels=["a", "b"])
    with pytest.raises(ic.ParameterError, match="NaN"):
        icp.image_grid(torch.full((2, 1, 4, 4), float("nan")))
    with pytest.raises(ic.ParameterError, match="^vmax"):
        icp.image(torch.rand(4, 4), vmin=1.0, vmax=0.0)
    with pytest.raises(TypeError, match="^images"):
        icp.image_grid("digits")


def test_vector_field_arrows_in_pixels():
    h, w = 6, 8
    field = torch.zeros(2, h, w)
    field[0, 2, 4] = 3.0  # pixel (row 2, column 4) moves 3 px right
    field[1, 4, 2] = -1.5  # pixel (row 4, column 2) moves 1.5 px up
    ax = icp.vector_field(field, image=torch.rand(1, h, w), step=2)
    (arrows,) = ax.collections
    xy = arrows.get_offsets()
    assert len(xy) == (h // 2) * (w // 2)
    uv = dict(zip(map(tuple, xy.tolist()), zip(arrows.U.tolist(), arrows.V.tolist())))
    assert uv[(4.0, 2.0)] == (3.0, 0.0) and uv[(2.0, 4.0)] == (0.0, -1.5)
    assert (arrows.angles, arrows.scale_units, arrows.scale) == ("xy", "xy", 1.0)
    assert ax.get_ylim() == (h - 0.5, -0.5)  # y down, as in the image
    (im,) = ax.images
    assert (im.norm.vmin, im.norm.vmax) == (0.0, 1.0) and im.get_alpha() == icp.FIELD_BACKGROUND_ALPHA
    assert _bare(ax)
    where = np.zeros((h, w), dtype=bool)
    where[2, 4] = where[3, 3] = True  # (3, 3) is off the step-2 grid
    assert len(icp.vector_field(field.numpy(), where=where).collections[0].get_offsets()) == 1
    with pytest.raises(ic.ParameterError, match="^field"):
        icp.vector_field(torch.zeros(1, 2, h, w))
    with pytest.raises(ic.ParameterError, match="^step"):
        icp.vector_field(field, step=0)


def test_difference_map_red_gained_blue_lost():
    d = torch.tensor([[0.5, -0.2], [0.0, 0.1]])
    ax = icp.difference_map(d)
    (im,) = ax.images
    assert (im.norm.vmin, im.norm.vmax) == (-0.5, 0.5)
    red, blue = im.cmap(im.norm(0.5)), im.cmap(im.norm(-0.5))
    assert red[0] > red[2] and blue[2] > blue[0]
    assert _bare(ax)
    im = icp.difference_map(d[None], limit=2.0).images[0]
    assert (im.norm.vmin, im.norm.vmax) == (-2.0, 2.0)
    assert icp.difference_map(torch.zeros(3, 3)).images[0].norm.vmax > 0
    with pytest.raises(ic.ParameterError, match="^diff"):
        icp.difference_map(torch.zeros(3, 3, 3))


def test_joint_heatmap_orders_rows_and_columns():
    p = torch.arange(9.0).view(3, 3) / 36
    ax = icp.joint_heatmap(p, order=[2, 0, 1])
    (im,) = ax.images
    np.testing.assert_allclose(im.get_array(), p[[2, 0, 1]][:, [2, 0, 1]].numpy())
    assert im.norm.vmin == 0.0 and im.norm.vmax == pytest.approx(1 / 3)  # a perfect clustering's diagonal
    assert icp.joint_heatmap(p[:2], vmax=0.5).images[0].norm.vmax == 0.5
    assert _bare(ax)
    with pytest.raises(ic.ParameterError, match="^order"):
        icp.joint_heatmap(p, order=[0, 0, 1])
    with pytest.raises(ic.ParameterError, match="^p "):
        icp.joint_heatmap(-p)
