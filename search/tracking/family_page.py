"""The inline style and script of the family-tree and archive pages (:mod:`search.tracking.family`).

No network: everything the page needs is in it. The script finds the page's SVG (``#view``, a ``<g id="vp">``
holding nodes ``a.node`` with ``data-*`` attributes and edges ``path.edge``) and adds: zoom (wheel, buttons) and
pan (drag); filters by cell, operator and hash prefix (non-matching nodes are dimmed); a click selects a node,
highlights its ancestors and descendants and shows its details with a link to its MLflow run. Inside MLflow's
artifact viewer the page is a sandboxed ``blob:`` frame whose links cannot leave the frame, so the details
panel also shows the run's address to copy; opened as a file, every node is a plain link to its run. Links
point at the UI that serves the page (a ``blob:`` address names it; any port), else (a file) at ``data-base``.
"""

from __future__ import annotations

__all__ = ["ARCHIVE_SCRIPT", "SCRIPT", "STYLE"]

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:8px 14px;border-bottom:1px solid #ddd;background:#fff;display:flex;flex-wrap:wrap;gap:10px;
align-items:center}
header h1{font-size:16px;margin:0 12px 0 0}
header label{font-size:13px}
select,input,button{font-size:13px}
#wrap{display:flex;height:calc(100vh - 52px)}
#view{flex:1;background:#fff;cursor:grab;user-select:none}
#view.drag{cursor:grabbing}
#panel{width:330px;overflow:auto;border-left:1px solid #ddd;padding:10px 12px;font-size:13px;background:#fff}
#panel code{font-size:12px}
#panel .url{word-break:break-all;font-family:monospace;font-size:11px;background:#f3f3f3;padding:3px}
.edge{fill:none;stroke:#9aa;stroke-width:1.2}
.node circle{stroke:#333;stroke-width:1}
.node.failed circle{stroke-dasharray:2 2;fill:#ccc}
.node text{font-size:10px;font-family:monospace;fill:#333;display:none}
svg.labels .node text{display:inline}
.dim{opacity:.12}
.node.sel circle{stroke:#d00;stroke-width:3}
.node.lin circle{stroke:#e07000;stroke-width:2.5}
.edge.lin{stroke:#e07000;stroke-width:2.5}
.legend{font-size:12px;display:flex;align-items:center;gap:4px}
.legend .bar{width:120px;height:10px;border:1px solid #999}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;font-size:12px}
.cell rect{stroke:#fff;stroke-width:1}
.axis{font-size:11px;fill:#444}
"""

SCRIPT = r"""
(function(){
const svg=document.getElementById('view'), vp=document.getElementById('vp'), panel=document.getElementById('panel');
const base=(location.protocol==='blob:')?new URL(location.href.slice(5)).origin:
  location.protocol.startsWith('http')?location.origin:svg.dataset.base;
const exp=svg.dataset.experiment;
function runUrl(id){return base.replace(/\/$/,'')+'/#/experiments/'+exp+'/runs/'+id+'?workflowType=machine_learning';}
const nodes={}, kids={};
document.querySelectorAll('a.node').forEach(a=>{
  const d=a.dataset; nodes[d.hash]=a;
  if(d.run){a.setAttribute('href',runUrl(d.run));}
  (d.parents?d.parents.split(','):[]).forEach(p=>{(kids[p]=kids[p]||[]).push(d.hash);});
});
const edges=Array.from(document.querySelectorAll('path.edge'));
let k=1,x=0,y=0;
function apply(){vp.setAttribute('transform','translate('+x+','+y+') scale('+k+')');
  svg.classList.toggle('labels',k>=0.8);}
function fit(){const b=vp.getBBox(), w=svg.clientWidth||800, h=svg.clientHeight||600;
  k=Math.min(w/(b.width+160),h/(b.height+40),1.25); x=(w-(b.width+120)*k)/2-b.x*k; y=(h-b.height*k)/2-b.y*k; apply();}
function zoom(f,cx,cy){x=cx-(cx-x)*f; y=cy-(cy-y)*f; k*=f; apply();}
svg.addEventListener('wheel',e=>{e.preventDefault(); const r=svg.getBoundingClientRect();
  zoom(e.deltaY<0?1.2:1/1.2,e.clientX-r.left,e.clientY-r.top);},{passive:false});
let drag=null, moved=false;
svg.addEventListener('mousedown',e=>{drag=[e.clientX-x,e.clientY-y]; moved=false; svg.classList.add('drag');});
window.addEventListener('mousemove',e=>{if(drag){x=e.clientX-drag[0]; y=e.clientY-drag[1]; moved=true; apply();}});
window.addEventListener('mouseup',()=>{drag=null; svg.classList.remove('drag');});
document.getElementById('zin').onclick=()=>zoom(1.3,svg.clientWidth/2,svg.clientHeight/2);
document.getElementById('zout').onclick=()=>zoom(1/1.3,svg.clientWidth/2,svg.clientHeight/2);
document.getElementById('fit').onclick=fit;
const fcell=document.getElementById('fcell'), fop=document.getElementById('fop');
const fhash=document.getElementById('fhash');
const count=document.getElementById('count');
function filter(){let n=0; const c=fcell.value, o=fop.value, h=fhash.value.trim().toLowerCase();
  for(const [hash,a] of Object.entries(nodes)){const d=a.dataset;
    const ok=(!c||d.cell===c)&&(!o||d.op===o)&&(!h||hash.startsWith(h)); a.classList.toggle('dim',!ok); n+=ok;}
  edges.forEach(e=>{const p=nodes[e.dataset.from], q=nodes[e.dataset.to];
    e.classList.toggle('dim',!!(p&&q&&(p.classList.contains('dim')||q.classList.contains('dim'))));});
  count.textContent=n+' of '+Object.keys(nodes).length+' shown';}
[fcell,fop].forEach(s=>s.onchange=filter); fhash.oninput=filter;
function walk(start,next){const seen=new Set([start]), todo=[start];
  while(todo.length){const h=todo.pop();
    (next(h)||[]).forEach(p=>{if(nodes[p]&&!seen.has(p)){seen.add(p); todo.push(p);}});}
  return seen;}
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));}
function link(h){const a=nodes[h]; return a?'<a href="#" data-go="'+h+'"><code>'+h.slice(0,10)+'</code></a>'
  +' '+esc(a.dataset.fitness):'<code>'+h.slice(0,10)+'</code> (not in this campaign)';}
function select(h){const a=nodes[h]; if(!a)return;
  document.querySelectorAll('.sel,.lin').forEach(e=>e.classList.remove('sel','lin'));
  const up=walk(h,g=>nodes[g]&&nodes[g].dataset.parents?nodes[g].dataset.parents.split(','):[]);
  const down=walk(h,g=>kids[g]);
  const line=new Set([...up,...down]); line.forEach(g=>nodes[g].classList.add('lin')); a.classList.add('sel');
  edges.forEach(e=>{if(line.has(e.dataset.from)&&line.has(e.dataset.to)&&(up.has(e.dataset.to)||down.has(e.dataset.from)))
    e.classList.add('lin');});
  const d=a.dataset, ps=d.parents?d.parents.split(','):[], cs=kids[h]||[];
  let s='<h3><code>'+esc(h)+'</code></h3><p>fitness <b>'+esc(d.fitness)+'</b> · '+esc(d.op)+' · birth '+esc(d.birth)
    +' · generation '+esc(d.gen)+(d.cell?' · cell <code>'+esc(d.cell)+'</code>':'')
    +(d.status!=='ok'?' · <b>'+esc(d.status)+'</b>':'')+'</p>';
  if(d.run){const u=runUrl(d.run); s+='<p><a target="_blank" rel="noopener" href="'+esc(u)+'">open its MLflow run ↗</a>'
    +'<br>run <code>'+esc(d.run)+'</code></p><div class="url">'+esc(u)+'</div>';}
  else s+='<p>(no MLflow run known)</p>';
  if(d.changes)s+='<p>changed from its nearer parent: '+esc(d.changes)+'</p>';
  s+='<p><b>parents</b> ('+ps.length+')<br>'+(ps.map(link).join('<br>')||'none: a founder')+'</p>';
  s+='<p><b>children</b> ('+cs.length+')<br>'+(cs.slice(0,50).map(link).join('<br>')||'none')+'</p>';
  s+='<p>'+up.size+' in its ancestry, '+(down.size-1)+' descendants (highlighted)</p>';
  panel.innerHTML=s;
  panel.querySelectorAll('a[data-go]').forEach(l=>l.onclick=e=>{e.preventDefault(); select(l.dataset.go);});}
Object.entries(nodes).forEach(([h,a])=>a.addEventListener('click',e=>{
  if(e.ctrlKey||e.metaKey||e.shiftKey||e.button===1)return; e.preventDefault(); if(!moved)select(h);}));
document.getElementById('best').onclick=()=>select(svg.dataset.best);
window.familySelect=select;
fit(); filter(); if(svg.dataset.best)select(svg.dataset.best);
})();
"""

ARCHIVE_SCRIPT = r"""
(function(){
const svg=document.getElementById('archive');
const base=(location.protocol==='blob:')?new URL(location.href.slice(5)).origin:
  location.protocol.startsWith('http')?location.origin:svg.dataset.base;
document.querySelectorAll('a[data-run]').forEach(a=>a.setAttribute('href',base.replace(/\/$/,'')+'/#/experiments/'
  +svg.dataset.experiment+'/runs/'+a.dataset.run+'?workflowType=machine_learning'));
})();
"""
