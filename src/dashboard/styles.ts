// The dashboard's one stylesheet, inlined into every page under the response's CSP nonce.
// No quotes, <, > or & in here: JSX escapes the text of <style> like any other text.
export const CSS = `
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,Segoe UI,Roboto,Helvetica Neue,Arial,Liberation Sans,system-ui,sans-serif;color:#1f2328;background:#f6f8fa}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;align-items:center;gap:16px;padding:10px 24px;background:#24292f;color:#fff}
header .brand{font-weight:600;font-size:16px;color:#fff}
header .tenant{margin-left:auto;color:#d0d7de;font-size:13px}
header form{margin:0}
header button{background:transparent;color:#fff;border:1px solid #57606a;border-radius:6px;padding:4px 10px;cursor:pointer}
main{max-width:1180px;margin:0 auto;padding:20px 24px}
h1{font-size:20px;margin:0 0 14px}h1 .mono{font-size:18px}h2{font-size:16px;margin:20px 0 10px}.card h2{margin:0 0 10px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;margin-bottom:16px}
.counts{display:flex;gap:10px;flex-wrap:wrap;margin-bottom:16px}
.count{display:block;min-width:118px;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;color:#1f2328}
.count:hover{text-decoration:none;border-color:#0969da}
.count.on{border-color:#0969da;box-shadow:0 0 0 1px #0969da}
.count .n{display:block;font-size:22px;font-weight:600}.count .l{color:#57606a;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
form.filters{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin-bottom:12px}
input,select{font:inherit;padding:6px 8px;border:1px solid #d0d7de;border-radius:6px;background:#fff}
input[type=text],input[type=password]{min-width:300px}
button,.button{font:inherit;padding:6px 14px;border-radius:6px;border:1px solid #1f883d;background:#1f883d;color:#fff;cursor:pointer}
button.secondary{background:#f6f8fa;color:#1f2328;border-color:#d0d7de}
button.danger{background:#fff;color:#cf222e;border-color:#cf222e}
button:disabled{opacity:.45;cursor:not-allowed}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de;border-radius:8px;overflow:hidden}
th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600;font-size:12px;color:#57606a;text-transform:uppercase;letter-spacing:.03em}
tr:last-child td{border-bottom:0}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{margin:0;background:#f6f8fa;border:1px solid #eaeef2;border-radius:6px;padding:10px;overflow:auto;max-height:420px;white-space:pre-wrap;word-break:break-word}
.card pre.snapshot{max-height:300px}td pre{max-height:160px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;border:1px solid transparent}
.s-watching{background:#ddf4ff;color:#0969da}.s-delivering{background:#fff8c5;color:#9a6700}
.s-delivered{background:#dafbe1;color:#1a7f37}.s-undeliverable{background:#ffebe9;color:#cf222e}
.s-cancelled{background:#eaeef2;color:#57606a}.s-pending{background:#fff8c5;color:#9a6700}
.state{display:inline-flex;gap:4px;flex-wrap:wrap}.s-delivered.ended-badly{background:#eaeef2;color:#57606a}
.h-healthy{background:#dafbe1;color:#1a7f37}.h-failing{background:#fff8c5;color:#9a6700}.h-circuit_open{background:#ffebe9;color:#cf222e}
.o-ok{background:#dafbe1;color:#1a7f37}.o-bad{background:#ffebe9;color:#cf222e}.o-neutral{background:#eaeef2;color:#57606a}
.http-ok{color:#1a7f37;font-weight:600}.http-bad{color:#cf222e;font-weight:600}
.muted{color:#57606a}.small{font-size:12px}
.flash{padding:10px 14px;border-radius:6px;margin-bottom:16px;border:1px solid}
.flash.ok{background:#dafbe1;border-color:#4ac26b;color:#116329}.flash.error{background:#ffebe9;border-color:#ff8182;color:#a40e26}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
dl{display:grid;grid-template-columns:110px minmax(0,1fr);gap:6px 12px;margin:0}dt{color:#57606a}dd{margin:0;word-break:break-all}
.actions{display:flex;gap:8px;margin-top:14px}.actions form{margin:0}
.pager{display:flex;gap:12px;justify-content:flex-end;margin-top:10px}
.signin{max-width:440px;margin:64px auto}.signin label{display:block;font-weight:600;margin-bottom:6px}
.signin input{width:100%;min-width:0;margin-bottom:12px}
details summary{cursor:pointer;color:#0969da}
`;
