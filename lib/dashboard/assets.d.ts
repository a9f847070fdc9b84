// The dashboard's stylesheet is imported as text (http/dashboard.ts).
declare module "*.css" {
  const text: string;
  export default text;
}
