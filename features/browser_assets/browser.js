// saelab feature browser: the latent index (sort, filter, search). Data: <script id="latents">.
(function () {
  const data = JSON.parse(document.getElementById("latents").textContent);
  const cols = data.columns, rows = data.rows;
  const body = document.querySelector("#index tbody"), head = document.querySelector("#index thead tr");
  const state = { key: data.default_sort, desc: true };
  const fmt = (v) => v === null || v === undefined ? "" : (typeof v === "number" ? (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.001) ? v.toExponential(2) : +v.toFixed(4)) : v);
  cols.forEach((c) => {
    const th = document.createElement("th");
    th.textContent = c.label; th.title = c.help || ""; th.dataset.key = c.key; th.className = "sortable";
    th.addEventListener("click", () => { state.desc = state.key === c.key ? !state.desc : c.key !== "latent"; state.key = c.key; render(); });
    head.appendChild(th);
  });
  const th = document.createElement("th"); th.textContent = "tags"; head.appendChild(th);
  const only = document.querySelector("input[data-tag]");  // the page's tag filter (reasoning, shortcut, ...)
  // a number searches latent ids (prefix), anything else the text columns (explanations, classes) and tags
  const texts = cols.filter((c) => rows.some((r) => typeof r[c.key] === "string")).map((c) => c.key);
  function keep(r) {
    const q = document.getElementById("search").value.trim();
    if (q && /^[0-9]+$/.test(q) && !String(r.latent).startsWith(q)) return false;
    const low = q.toLowerCase(), has = (x) => typeof x === "string" && x.toLowerCase().includes(low);
    if (q && !/^[0-9]+$/.test(q) && !texts.some((k) => has(r[k])) && !r.tags.some(has)) return false;
    if (only.checked && !r.tags.includes(only.dataset.tag)) return false;
    if (document.getElementById("only-dead").checked && !r.tags.includes("dead")) return false;
    if (document.getElementById("only-dense").checked && !r.tags.includes("dense")) return false;
    return true;
  }
  function render() {
    const k = state.key, s = state.desc ? -1 : 1;
    const shown = rows.filter(keep).sort((a, b) => {
      const x = a[k], y = b[k];
      if (x === y) return a.latent - b.latent;
      if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * s;
    });
    head.querySelectorAll("th").forEach((h) => { h.classList.remove("sorted-asc", "sorted-desc"); if (h.dataset.key === k) h.classList.add(state.desc ? "sorted-desc" : "sorted-asc"); });
    body.textContent = "";
    for (const r of shown) {
      const tr = document.createElement("tr");
      cols.forEach((c, i) => {
        const td = document.createElement("td");
        if (i === 0) { const a = document.createElement("a"); a.href = "latents/" + r.latent + ".html"; a.textContent = "#" + r.latent; td.appendChild(a); }
        else { td.textContent = fmt(r[c.key]); if (typeof r[c.key] === "string") td.className = "text"; }
        tr.appendChild(td);
      });
      const td = document.createElement("td");
      r.tags.forEach((t) => { const sp = document.createElement("span"); sp.className = "tag " + t; sp.textContent = t; td.appendChild(sp); });
      tr.appendChild(td); body.appendChild(tr);
    }
    document.getElementById("count").textContent = shown.length + " of " + rows.length + " latents";
  }
  ["search", only.id, "only-dead", "only-dense"].forEach((id) => document.getElementById(id).addEventListener("input", render));
  render();
})();
