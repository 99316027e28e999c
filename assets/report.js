/* Readiness signal of the printable report (dashboard/pages/report.py).
   The PDF renderer prints only when <body data-report-ready="true">: the report root exists,
   it holds as many graphs as it announces, every graph is drawn (Plotly's _fullLayout, not
   pending, a trace in the SVG) and no Dash callback is loading. Two ticks in a row, so a
   graph that is redrawn right after its first paint is not caught mid-way. */
(function () {
  var stableTicks = 0;
  function drawn(graph) {
    var plot = graph.querySelector('.js-plotly-plot') || graph;
    return Boolean(plot && plot._fullLayout && !graph.classList.contains('dash-graph--pending') &&
                   plot.querySelector('.main-svg .trace'));
  }
  function tick() {
    var root = document.getElementById('report-root');
    if (!root) { document.body.dataset.reportReady = 'false'; stableTicks = 0; return; }
    var expected = parseInt(root.getAttribute('data-graphs') || '0', 10);
    var graphs = Array.prototype.slice.call(root.querySelectorAll('.dash-graph'));
    var pending = graphs.filter(function (g) { return !drawn(g); }).map(function (g) { return g.id; });
    var loading = document.querySelector('[data-dash-is-loading="true"]') !== null;
    window.cxReportPending = {expected: expected, found: graphs.length, notDrawn: pending, loading: loading};
    var ok = graphs.length === expected && pending.length === 0 && !loading;
    stableTicks = ok ? stableTicks + 1 : 0;
    document.body.dataset.reportReady = stableTicks >= 2 ? 'true' : 'false';
  }
  setInterval(tick, 150);
})();
