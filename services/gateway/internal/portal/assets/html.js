// The UI primitives every module imports: Preact with htm tagged templates
// (vendor/preact-htm.js, see vendor/README.md). Import them from here, not
// from the vendored file, so it can be replaced in one place.
export {
  html, render, Component, createContext, useState, useReducer, useEffect, useLayoutEffect,
  useRef, useMemo, useCallback, useContext,
} from './vendor/preact-htm.js';
