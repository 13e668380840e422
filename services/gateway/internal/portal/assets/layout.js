// The frame of every signed-in page: a skip link, the navigation the role
// may use, who is signed in and the sign-out button.
import { html, useEffect, useRef } from './html.js';
import { routes } from './routes.js';
import { role, tenantOf } from './session.js';

export function Layout({ session, current, title, onSignOut, signOutError, children }) {
  const main = useRef(null);
  useEffect(() => {
    document.title = title ? `${title} · Canopy` : 'Canopy';
    // Keyboard and screen-reader users start at the new page's content.
    if (main.current) main.current.focus({ preventScroll: true });
  }, [current]);
  const links = routes.filter((r) => r.nav && r.roles.includes(role(session)));
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current && main.current.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">Canopy</a>
      <nav aria-label="Main">
        <ul>${links.map((r) => html`<li><a href=${'#' + r.path}
          aria-current=${current === r.path || current.startsWith(r.path + '/') ? 'page' : undefined}>${r.nav}</a></li>`)}</ul>
      </nav>
      <div class="who">
        <span class="who-role" data-testid="who">${tenantOf(session) ? html`<b>${tenantOf(session)}</b> · ` : null}${role(session)}</span>
        <button type="button" class="secondary" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    ${signOutError ? html`<div class="container">${signOutError}</div>` : null}
    <main id="main" tabindex="-1" ref=${main} class="container">${children}</main>`;
}
