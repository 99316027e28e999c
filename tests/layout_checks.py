"""Layout checks run inside the page: cut tables and grids, overlapping chart labels.

Each returns a list of human-readable problems (empty when the layout is sound), so a
failing test says which table or which labels.
"""

from __future__ import annotations

from playwright.sync_api import Page

# Every html table and every AG Grid: a table wider than its box, a grid that scrolls
# sideways, or a heading cut to an ellipsis is a cut column.
CUT_TABLES = """() => {
  const out = [];
  const name = (el) => {
    const holder = el.closest('[id]');
    return holder ? '#' + holder.id : el.className;
  };
  for (const table of document.querySelectorAll('table')) {
    if (!table.offsetParent) continue;  // not displayed
    const box = table.parentElement.getBoundingClientRect();
    const r = table.getBoundingClientRect();
    if (r.right > box.right + 1 || r.right > window.innerWidth + 1) {
      out.push(`table ${name(table)} is ${Math.round(r.width)} px wide in a ` +
               `${Math.round(box.width)} px box`);
    }
  }
  for (const grid of document.querySelectorAll('.ag-root-wrapper')) {
    if (!grid.offsetParent) continue;
    for (const vp of grid.querySelectorAll('.ag-center-cols-viewport, ' +
                                           '.ag-body-horizontal-scroll-viewport')) {
      if (vp.scrollWidth > vp.clientWidth + 1) {
        out.push(`grid ${name(grid)} scrolls sideways: ${vp.scrollWidth} px of columns ` +
                 `in ${vp.clientWidth} px`);
      }
    }
    for (const head of grid.querySelectorAll('.ag-header-cell-text')) {
      if (head.scrollWidth > head.clientWidth + 1) {
        out.push(`grid ${name(grid)}: heading "${head.textContent}" is cut`);
      }
    }
    const r = grid.getBoundingClientRect();
    if (r.right > window.innerWidth + 1) {
      out.push(`grid ${name(grid)} runs past the window (${Math.round(r.right)} px)`);
    }
  }
  return out;
}"""

# Text labels of every Plotly chart: two visible labels whose boxes overlap by more than a
# sliver ("hiddenhiddenhidden", "PlymouthOxford", one axis's ticks over another's).
OVERLAPPING_LABELS = """() => {
  const out = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const holder = plot.closest('[id]');
    const where = holder ? '#' + holder.id : 'a chart';
    const boxes = [];
    for (const t of plot.querySelectorAll('svg text')) {
      const text = (t.textContent || '').trim();
      if (!text || t.closest('.hoverlayer')) continue;
      const style = window.getComputedStyle(t);
      if (style.display === 'none' || style.visibility === 'hidden'
          || Number(style.opacity) === 0) continue;
      const r = t.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) continue;
      boxes.push({text, r});
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i].r, b = boxes[j].r;
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 2 && h > 2) {
          out.push(`${where}: "${boxes[i].text}" overlaps "${boxes[j].text}"`);
        }
      }
    }
  }
  return out;
}"""


def cut_tables(page: Page) -> list[str]:
    """Tables and grids of the page whose columns do not all fit."""
    return page.evaluate(CUT_TABLES)


def overlapping_labels(page: Page) -> list[str]:
    """Pairs of chart text labels of the page that overlap."""
    return page.evaluate(OVERLAPPING_LABELS)
