/** The dashboard's port unless DASHBOARD_PORT or --port says otherwise (its own file: ztm reads it without loading the dashboard). */
export const DEFAULT_DASHBOARD_PORT = 3001;
